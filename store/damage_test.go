package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildStore writes n sales through the store's API as the engine does: each sale
// with its outbox entry, every tenth in the in-doubt index with a refund, and a batch.
// Some outbox entries are acked so the file has free pages. It returns the closed
// file's path and every sale document by id.
func buildStore(t testing.TB, dir string, n int) (string, map[string][]byte) {
	t.Helper()
	path := filepath.Join(dir, "posd.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	docs := make(map[string][]byte, n)
	const chunk = 500
	for start := 0; start < n; start += chunk {
		err := s.Update(func(tx *Tx) error {
			for i := start; i < min(start+chunk, n); i++ {
				id := fmt.Sprintf("0190f1c2-%08d-7000-8000-000000000000", i)
				seq, err := tx.Enqueue([]byte(fmt.Sprintf(`{"v":1,"kind":"payment","key":%q,"amount_minor":%d}`, id, 1000+i)))
				if err != nil {
					return err
				}
				order, err := tx.NextOrder()
				if err != nil {
					return err
				}
				doc := []byte(fmt.Sprintf(`{"id":%q,"status":"approved","amount_minor":%d,"currency":"KRW","scheme":"alipay","masked_code":"****3456","order":%d,"outbox_seq":%d,"created_at":"2026-12-05T10:00:00Z","padding":%q}`,
					id, 1000+i, order, seq, strings.Repeat("x", 300)))
				if err := tx.PutSale(id, doc); err != nil {
					return err
				}
				docs[id] = doc
				if i%10 == 0 {
					rid := "r" + id
					if err := tx.PutRefund(rid, []byte(fmt.Sprintf(`{"id":%q,"sale_id":%q,"status":"pending"}`, rid, id))); err != nil {
						return err
					}
					if err := tx.SetUnsettled(rid, "refund"); err != nil {
						return err
					}
				}
			}
			return tx.PutBatch("b1", []byte(`{"id":"b1","number":1,"status":"open"}`))
		})
		if err != nil {
			t.Fatal(err)
		}
		// The cloud acknowledged the older half of what is queued.
		es, err := s.Peek(chunk/2, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if err := s.Ack(e.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, docs
}

// salesPages returns the sales bucket's root page and its leaf pages in key order,
// with the ids on each, read from the file.
func salesPages(t testing.TB, path string) (pf *pageFile, root uint64, leaves []uint64, keys map[uint64][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	pf, err = readMetas(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	w := newWalker(pf)
	keys = map[uint64][]string{}
	var walk func(id uint64)
	walk = func(id uint64) {
		p, err := pf.page(id, pf.meta.hwm)
		if err != nil {
			t.Fatal(err)
		}
		flags, es, err := parseElems(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if flags == flagBranch {
				walk(e.child)
				continue
			}
			if len(keys[id]) == 0 {
				leaves = append(leaves, id)
			}
			keys[id] = append(keys[id], string(e.key))
		}
	}
	w.bucket = func(name string, seq uint64) {}
	rp, err := pf.page(pf.meta.root, pf.meta.hwm)
	if err != nil {
		t.Fatal(err)
	}
	_, es, err := parseElems(rp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if bytes.Equal(e.key, bucketSales) {
			root = le.Uint64(e.value)
		}
	}
	if root == 0 {
		t.Fatal("sales bucket is inline; write more sales")
	}
	walk(root)
	return pf, root, leaves, keys
}

// xorAt flips every bit of n bytes at off.
func xorAt(t testing.TB, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xFF
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

const damageSales = 3000

// truncatedLost are the sales the truncation test cut off with their leaf pages.
var truncatedLost []string

// TestDamagedFiles damages a file in each way the audit found and checks that Open
// refuses with ErrDamaged naming the file and the command, Check reports it, nothing
// panics, and Salvage keeps the records on undamaged pages into a file that passes
// Check.
func TestDamagedFiles(t *testing.T) {
	cases := []struct {
		name string
		// damage damages the file and returns the sale ids it destroyed (nil: none
		// should be lost).
		damage func(t *testing.T, path string) (lost []string)
		// plainOpen: Open without Verify refuses too (what bbolt.Open itself reads is
		// damaged).
		plainOpen bool
	}{
		{name: "branch page", damage: func(t *testing.T, path string) []string {
			pf, root, _, _ := salesPages(t, path)
			// Scribble over the element array: every child of the sales tree is cut
			// off, and found again by salvage's scan.
			xorAt(t, path, int64(root)*int64(pf.ps)+16, 64)
			return nil
		}},
		{name: "branch page type", damage: func(t *testing.T, path string) []string {
			pf, root, _, _ := salesPages(t, path)
			writeAt(t, path, int64(root)*int64(pf.ps)+8, []byte{0x20, 0})
			return nil
		}},
		{name: "truncated", plainOpen: true, damage: func(t *testing.T, path string) []string {
			pf, _, leaves, keys := salesPages(t, path)
			// bbolt grows the file ahead of use: cut below the high water mark.
			cut := int64(pf.meta.hwm) * int64(pf.ps) * 6 / 10 / int64(pf.ps) * int64(pf.ps)
			if err := os.Truncate(path, cut); err != nil {
				t.Fatal(err)
			}
			var lost []string
			for _, id := range leaves {
				if int64(id)*int64(pf.ps) >= cut {
					lost = append(lost, keys[id]...)
				}
			}
			// The root, branch and freelist pages, rewritten by every commit, may be
			// cut off too: salvage falls back to older copies, so which sales it keeps
			// depends on where bbolt put the pages. Checked below: what it keeps is
			// exact, and sequences are not reused.
			truncatedLost = lost
			return nil
		}},
		{name: "64 bytes flipped mid-file", damage: func(t *testing.T, path string) []string {
			pf, _, leaves, keys := salesPages(t, path)
			id := leaves[len(leaves)/2]
			xorAt(t, path, int64(id)*int64(pf.ps)+32, 64) // elements 1 to 4
			return keys[id]
		}},
		{name: "1 KiB flipped mid-file", damage: func(t *testing.T, path string) []string {
			pf, _, leaves, keys := salesPages(t, path)
			id := leaves[len(leaves)/2]
			// The last 512 bytes of the page before and the first 512 of this one.
			xorAt(t, path, int64(id)*int64(pf.ps)-512, 1024)
			return keys[id]
		}},
		{name: "leaf count", damage: func(t *testing.T, path string) []string {
			pf, _, leaves, keys := salesPages(t, path)
			id := leaves[len(leaves)/2]
			n := len(keys[id]) - 6
			writeAt(t, path, int64(id)*int64(pf.ps)+10, []byte{byte(n), byte(n >> 8)})
			return nil // salvage repairs the count from the layout
		}},
		{name: "both meta pages", plainOpen: true, damage: func(t *testing.T, path string) []string {
			pf, _, _, _ := salesPages(t, path)
			xorAt(t, path, 16, 64)
			xorAt(t, path, int64(pf.ps)+16, 64)
			return nil // the root page is found by scanning
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, docs := buildStore(t, dir, damageSales)
			lost := tc.damage(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			wantDamaged := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrDamaged) {
					t.Fatalf("%s = %v, want ErrDamaged", what, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, path) || !strings.Contains(msg, "posctl store salvage "+path) {
					t.Fatalf("%s: message does not name the file and the command: %s", what, msg)
				}
			}
			_, err = Open(path, Options{Verify: true})
			wantDamaged("Open with Verify", err)
			if tc.plainOpen {
				_, err = Open(path, Options{ReadOnly: true})
				wantDamaged("Open read-only", err)
			}
			// Check through a plain open when bbolt can open the file at all.
			if s, err := Open(path, Options{ReadOnly: true}); err == nil {
				wantDamaged("Check", s.Check())
				s.Close()
			}

			out := filepath.Join(dir, "salvaged.db")
			rep, err := Salvage(path, out)
			if err != nil {
				t.Fatalf("Salvage: %v", err)
			}
			t.Logf("kept %v, orphans %d, lost %q, dropped %d, notes %q", rep.Kept, rep.Orphans, rep.Lost, len(rep.Dropped), rep.Notes)
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("Salvage modified its input")
			}
			if _, err := Salvage(path, out); !errors.Is(err, ErrExists) {
				t.Fatalf("Salvage onto an existing file = %v", err)
			}
			s, err := Open(out, Options{Verify: true})
			if err != nil {
				t.Fatalf("salvaged file: %v", err)
			}
			defer s.Close()
			if err := s.Check(); err != nil {
				t.Fatalf("salvaged file fails Check: %v", err)
			}
			lostSet := map[string]bool{}
			for _, id := range lost {
				lostSet[id] = true
			}
			kept := 0
			for id, doc := range docs {
				got, err := s.GetSale(id)
				switch {
				case lostSet[id]:
				case err != nil && tc.name == "truncated":
				case err != nil:
					t.Errorf("sale %s on an undamaged page was not salvaged: %v", id, err)
				case !bytes.Equal(got, doc) && tc.name != "1 KiB flipped mid-file":
					t.Errorf("sale %s salvaged with a different document", id)
				}
				if err == nil {
					kept++
				}
			}
			if tc.name == "truncated" {
				for _, id := range truncatedLost {
					if _, err := s.GetSale(id); err == nil {
						t.Errorf("sale %s salvaged from past the end of the file", id)
					}
				}
				if kept == 0 || rep.Kept["sales"] != kept {
					t.Errorf("salvaged %d sales (report: %d)", kept, rep.Kept["sales"])
				}
			} else if want := damageSales - len(lost); kept != want || rep.Kept["sales"] != kept {
				t.Errorf("salvaged %d sales (report: %d), want %d", kept, rep.Kept["sales"], want)
			}
			// No sequence goes backwards: the next outbox entry and order number are
			// past every salvaged one.
			var next, order uint64
			s.Update(func(tx *Tx) error {
				next, _ = tx.Enqueue([]byte("x"))
				order, _ = tx.NextOrder()
				return nil
			})
			if next <= damageSales || order <= damageSales {
				t.Errorf("sequences reused after salvage: outbox %d, order %d", next, order)
			}
		})
	}
}

// TestDamageWhileOpen damages pages under an open store (bbolt maps the file, so a
// write through another descriptor is what its next read sees) and checks that reads
// answer ErrDamaged instead of panicking or answering "not found", and that the store
// keeps serving the records on other pages and keeps taking writes.
func TestDamageWhileOpen(t *testing.T) {
	dir := t.TempDir()
	path, docs := buildStore(t, dir, 600)
	pf, root, leaves, keys := salesPages(t, path)
	s, err := Open(path, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A leaf whose element array is garbage: bbolt would index out of range or
	// fault on it.
	bad := leaves[len(leaves)/2]
	xorAt(t, path, int64(bad)*int64(pf.ps)+16, 64)
	for _, id := range keys[bad] {
		if _, err := s.GetSale(id); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "posctl store salvage "+path) {
			t.Fatalf("GetSale on a damaged page = %v, want ErrDamaged naming the command", err)
		}
	}
	// A leaf whose count was zeroed: bbolt finds nothing there; the store says why.
	hidden := leaves[len(leaves)/4]
	writeAt(t, path, int64(hidden)*int64(pf.ps)+10, []byte{0, 0})
	for _, id := range keys[hidden] {
		if _, err := s.GetSale(id); !errors.Is(err, ErrDamaged) {
			t.Fatalf("GetSale on a page whose count was zeroed = %v, want ErrDamaged", err)
		}
	}
	if _, err := s.GetSale("no-such-sale"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSale of an unknown id = %v, want ErrNotFound", err)
	}
	// Records on other pages are served, and writes go on.
	for _, id := range keys[leaves[0]] {
		if got, err := s.GetSale(id); err != nil || !bytes.Equal(got, docs[id]) {
			t.Fatalf("GetSale on a good page = %v", err)
		}
	}
	if _, err := s.PutSale("new", []byte("m"), doc("new")); err != nil {
		t.Fatalf("PutSale after a damaged read: %v", err)
	}
	if err := s.Failed(); err != nil {
		t.Fatalf("store marked failed after a read panic bbolt rolled back: %v", err)
	}
	// Walks over the damage answer errors.
	if err := s.ForEachSale(func(string, []byte) error { return nil }); !errors.Is(err, ErrDamaged) {
		t.Fatalf("ForEachSale = %v, want ErrDamaged", err)
	}
	if _, err := s.PruneSales(1<<20, func(string, []byte) (bool, bool) { return true, false }); !errors.Is(err, ErrDamaged) {
		t.Fatalf("PruneSales = %v, want ErrDamaged", err)
	}
	// A damaged branch page (the audit's pruning panic). The writes above moved the
	// root: read where it is now.
	root = currentSalesRoot(t, path)
	writeAt(t, path, int64(root)*int64(pf.ps)+8, []byte{0x20, 0})
	if _, err := s.PruneSales(10, func(string, []byte) (bool, bool) { return true, false }); !errors.Is(err, ErrDamaged) {
		t.Fatalf("PruneSales over a damaged branch = %v, want ErrDamaged", err)
	}
	if err := s.Check(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Check = %v", err)
	}
	// The outbox is elsewhere: the link still drains.
	if _, err := s.Peek(10, nil); err != nil {
		t.Fatalf("Peek: %v", err)
	}
}

// TestTruncatedWhileOpen cuts the file under an open store: reading a page past the
// end faults (SIGBUS), which the store turns into ErrDamaged.
func TestTruncatedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	path, _ := buildStore(t, dir, 600)
	pf, _, leaves, keys := salesPages(t, path)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last := leaves[0]
	for _, id := range leaves {
		last = max(last, id)
	}
	if err := os.Truncate(path, int64(last)*int64(pf.ps)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSale(keys[last][0]); !errors.Is(err, ErrDamaged) {
		t.Fatalf("GetSale past the end of the file = %v, want ErrDamaged", err)
	}
}

// TestPanicOutsideStoreIsNotDamage: a bug in the caller's function is re-raised, not
// reported as a damaged file.
func TestPanicOutsideStoreIsNotDamage(t *testing.T) {
	s, _ := open(t)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("caller's panic swallowed")
		}
		if err := s.Update(func(*Tx) error { return nil }); err != nil {
			t.Fatalf("store unusable after a caller's panic: %v", err)
		}
	}()
	s.View(func(*Tx) error {
		var m map[string]int
		m["x"] = 1
		return nil
	})
}

// currentSalesRoot returns the sales bucket's root page as the file says now.
func currentSalesRoot(t testing.TB, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	pf, err := readMetas(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pf.page(pf.meta.root, pf.meta.hwm)
	if err != nil {
		t.Fatal(err)
	}
	_, es, err := parseElems(rp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if bytes.Equal(e.key, bucketSales) {
			return le.Uint64(e.value)
		}
	}
	t.Fatal("no sales bucket")
	return 0
}

// TestSalvageSoundFile: salvaging a sound file copies everything and keeps every
// sequence exactly.
func TestSalvageSoundFile(t *testing.T) {
	dir := t.TempDir()
	path, docs := buildStore(t, dir, 1000)
	out := filepath.Join(dir, "out.db")
	rep, err := Salvage(path, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) != 0 || len(rep.Dropped) != 0 || rep.Orphans != 0 || rep.Kept["sales"] != 1000 || rep.Kept["refunds"] != 100 {
		t.Fatalf("report of a sound file: %+v", rep)
	}
	s, err := Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, doc := range docs {
		if got, err := s.GetSale(id); err != nil || !bytes.Equal(got, doc) {
			t.Fatalf("sale %s: %v", id, err)
		}
	}
	depth, oldest, _ := s.OutboxStats()
	if depth != 500 || oldest != 501 {
		t.Fatalf("outbox after salvage: depth %d, oldest %d", depth, oldest)
	}
	s.Update(func(tx *Tx) error {
		if n, _ := tx.Enqueue([]byte("x")); n != 1001 {
			t.Errorf("next outbox seq %d, want 1001", n)
		}
		if n, _ := tx.NextOrder(); n != 1001 {
			t.Errorf("next order %d, want 1001", n)
		}
		return nil
	})
}

// TestFailedStoreDoesNotHang: both meta pages damaged under an open store make bbolt
// panic while it begins a transaction, holding its locks. The store marks itself
// failed: every later call answers ErrDamaged at once instead of waiting forever, and
// Close returns.
func TestFailedStoreDoesNotHang(t *testing.T) {
	s, path := open(t)
	if _, err := s.PutSale("a", []byte("m"), doc("a")); err != nil {
		t.Fatal(err)
	}
	ps := s.pageSize
	xorAt(t, path, 16, 64)
	xorAt(t, path, int64(ps)+16, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.PutSale("b", nil, doc("b")); !errors.Is(err, ErrDamaged) {
			t.Errorf("PutSale with both metas damaged = %v, want ErrDamaged", err)
		}
		if s.Failed() == nil {
			t.Error("store not marked failed after a panic inside bbolt's Begin")
		}
		for range 3 {
			if _, err := s.GetSale("a"); !errors.Is(err, ErrDamaged) {
				t.Errorf("GetSale on a failed store = %v, want ErrDamaged", err)
			}
			if _, err := s.PutSale("c", nil, doc("c")); !errors.Is(err, ErrDamaged) {
				t.Errorf("PutSale on a failed store = %v, want ErrDamaged", err)
			}
		}
		s.Close()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the store hung after bbolt panicked holding its locks")
	}
}
