package lazyfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// mount mounts a lazyfs over a fresh backing directory. Without FUSE the test skips
// with an install hint, except under CI=true, where it fails.
func mount(t *testing.T) (l *FS, backing, mnt string) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: power-cut tests must run)", err)
		}
		t.Skipf("%v; power-cut tests skipped", err)
	}
	dir := t.TempDir()
	backing, mnt = filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Mount(backing, mnt)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("%v; power-cut tests skipped", err)
	}
	t.Cleanup(func() { l.Unmount() })
	return l, backing, mnt
}

// cut drops unsynced writes and unmounts, so the backing directory is what a disk
// holds after the power came back.
func cut(t *testing.T, l *FS) int {
	t.Helper()
	n := l.PowerCut()
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	return n
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWritesWithoutFsyncAreLost(t *testing.T) {
	l, backing, mnt := mount(t)
	f, err := os.Create(filepath.Join(mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("walletless"), 1000) // 10 kB: three pages
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Before the cut the file reads back through the mount (from the page cache) …
	if got := readFile(t, filepath.Join(mnt, "a")); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, wrote %d", len(got), len(data))
	}
	// … but none of it reached the backing directory.
	if got := readFile(t, filepath.Join(backing, "a")); len(got) != 0 {
		t.Fatalf("backing file has %d bytes before any fsync", len(got))
	}
	if n := cut(t, l); n != 3 {
		t.Errorf("PowerCut dropped %d pages, want 3", n)
	}
	if got := readFile(t, filepath.Join(backing, "a")); len(got) != 0 {
		t.Errorf("after the cut the file has %d bytes, want 0", len(got))
	}
}

func TestFsyncedWritesSurvive(t *testing.T) {
	l, backing, mnt := mount(t)
	p := filepath.Join(mnt, "a")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	synced := bytes.Repeat([]byte{'s'}, 5000)
	if _, err := f.WriteAt(synced, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// Then overwrite the middle, grow the file and do not sync: the cut undoes both.
	if _, err := f.WriteAt(bytes.Repeat([]byte{'u'}, 3000), 4000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := readFile(t, p); len(got) != 7000 || got[4500] != 'u' || got[100] != 's' {
		t.Fatalf("through the mount: %d bytes", len(got))
	}
	cut(t, l)
	if got := readFile(t, filepath.Join(backing, "a")); !bytes.Equal(got, synced) {
		t.Errorf("after the cut: %d bytes (want the %d synced ones)", len(got), len(synced))
	}
}

func TestTruncateHeldBackUntilFsync(t *testing.T) {
	l, backing, mnt := mount(t)
	p := filepath.Join(mnt, "a")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{'x'}, 9000)
	f.Write(data)
	f.Sync()
	if err := f.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(9000); err != nil { // grown again: the tail reads as zeros
		t.Fatal(err)
	}
	got := make([]byte, 9000)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if got[99] != 'x' || got[100] != 0 || got[8999] != 0 {
		t.Fatalf("after truncate and extend: byte 99 %q, 100 %q, 8999 %q", got[99], got[100], got[8999])
	}
	f.Close()
	cut(t, l)
	if got := readFile(t, filepath.Join(backing, "a")); !bytes.Equal(got, data) {
		t.Errorf("the unsynced truncate survived the cut: %d bytes", len(got))
	}
}

// TestBbolt: bbolt's committed transactions survive a cut; with NoSync they do not,
// which is what the power-cut tests rely on to notice a store that skips fsync. bbolt
// runs in a child process: a page fault on an mmap of a FUSE file served by the same
// Go process can deadlock with the garbage collector.
func TestBbolt(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSync=%v", noSync), func(t *testing.T) {
			l, backing, mnt := mount(t)
			const n = 200
			cmd := exec.Command(os.Args[0], "-test.run=^TestBboltChild$")
			cmd.Env = append(os.Environ(), "LAZYFS_CHILD_DB="+filepath.Join(mnt, "x.db"), fmt.Sprintf("LAZYFS_CHILD_NOSYNC=%v", noSync))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			cut(t, l)
			db, err := bolt.Open(filepath.Join(backing, "x.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			keys := 0
			db.View(func(tx *bolt.Tx) error {
				if b := tx.Bucket([]byte("b")); b != nil {
					keys = b.Stats().KeyN
				}
				return nil
			})
			switch {
			case !noSync && keys != n:
				t.Errorf("%d of %d committed keys after the cut", keys, n)
			case noSync && keys == n:
				t.Errorf("with NoSync all %d keys survived the cut: lazyfs held nothing back", n)
			}
			t.Logf("NoSync=%v: %d of %d keys after the cut; %+v", noSync, keys, n, l.Stats())
		})
	}
}

// TestBboltChild is TestBbolt's writer: 200 transactions, then a check that all of
// them read back through the mount.
func TestBboltChild(t *testing.T) {
	path := os.Getenv("LAZYFS_CHILD_DB")
	if path == "" {
		t.Skip("run by TestBbolt")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db.NoSync = os.Getenv("LAZYFS_CHILD_NOSYNC") == "true"
	const n = 200
	for i := 0; i < n; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put(fmt.Appendf(nil, "k%04d", i), bytes.Repeat([]byte{'v'}, 300))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket([]byte("b")).Stats().KeyN; got != n {
			t.Errorf("through the mount: %d keys", got)
		}
		return nil
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
