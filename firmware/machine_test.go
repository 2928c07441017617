package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"
)

// rig is a device with files slots: slot a runs posd "v1"; dir/new.wlf carries "v2".
type rig struct {
	slots Files
	state string // the machine's dir
	db    string // the store file a snapshot covers
	art   string
	pub   minisign.PublicKey
}

func newRig(t *testing.T, root string, k testKey) rig {
	r := rig{slots: Files{Dir: filepath.Join(root, "slots")}, state: filepath.Join(root, "fw"), db: filepath.Join(root, "posd.db"), art: filepath.Join(root, "new.wlf"), pub: k.pub}
	os.MkdirAll(filepath.Join(r.slots.Dir, SlotA), 0o755)
	os.WriteFile(filepath.Join(r.slots.Dir, SlotA, "posd"), []byte("v1"), 0o755)
	if err := r.slots.link(SlotA); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(r.db, []byte("store written by v1"), 0o600)
	os.WriteFile(r.art, packBytes(t, k, manifest("2.0", "1.5"), map[string]string{"posd": "v2"}), 0o600)
	return r
}

func (r rig) open(hook func(string)) (*Machine, error) {
	return OpenMachine(MachineConfig{Dir: r.state, Backend: r.slots, Keys: []minisign.PublicKey{r.pub}, Arch: runtime.GOARCH, Board: "rpi4", DB: r.db, MaxAttempts: 3, VerifyTimeout: time.Hour, Hook: hook})
}

func copySnapshot(db string) func(string) error {
	return func(dst string) error {
		b, err := os.ReadFile(db)
		if err != nil {
			return err
		}
		return writeFileAtomic(dst, b, 0o600)
	}
}

// startUpdate runs an update from its beginning to the switch, as posd does.
func startUpdate(m *Machine, r rig) error {
	if err := m.Begin(Update{ID: "job-1", Source: "usb", File: r.art, Step: StepDownload}); err != nil {
		return err
	}
	return resume(m, r)
}

// resume continues an update that has not switched.
func resume(m *Machine, r rig) error {
	if _, err := m.Check(); err != nil {
		return err
	}
	if err := m.Install(copySnapshot(r.db), nil); err != nil {
		return err
	}
	return m.Switch(Health{Printer: true})
}

// posdStart is what a start of current/posd does: resume an update not yet
// switched, or on trial migrate the store, check health and commit or ask for a
// rollback.
func posdStart(m *Machine, r rig, healthy bool) error {
	run, err := r.slots.Running()
	if err != nil {
		return err
	}
	version, _ := os.ReadFile(filepath.Join(r.slots.Dir, run, "posd"))
	st := m.State()
	if st.Update == nil {
		return nil
	}
	switch st.Update.Step {
	case StepDownload, StepVerify, StepInstall:
		return resume(m, r)
	}
	if _, ok := m.Trial(strings.TrimPrefix(string(version), "v") + ".0"); ok {
		os.WriteFile(r.db, []byte("store migrated by v2"), 0o600)
		if healthy {
			return m.Commit()
		}
		return m.RequestRollback("printer not as healthy as before")
	}
	return nil
}

// TestMain lets the test binary be the killed child of TestKilledInEachStep.
func TestMain(m *testing.M) {
	if dir := os.Getenv("FIRMWARE_CHILD_DIR"); dir != "" {
		os.Exit(child(dir, Step(os.Getenv("FIRMWARE_CHILD_KILL")), os.Getenv("FIRMWARE_CHILD_HEALTHY") == "1"))
	}
	os.Exit(m.Run())
}

func child(dir string, kill Step, healthy bool) int {
	pubText, _ := os.ReadFile(filepath.Join(dir, "key.pub"))
	var pub minisign.PublicKey
	if err := pub.UnmarshalText(pubText); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	r := rig{slots: Files{Dir: filepath.Join(dir, "slots")}, state: filepath.Join(dir, "fw"), db: filepath.Join(dir, "posd.db"), art: filepath.Join(dir, "new.wlf"), pub: pub}
	m, err := r.open(func(s string) {
		if s == string(kill) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if err := startUpdate(m, r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	// The supervisor starts the new version.
	for range 5 {
		if _, err := m.Boot(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if err := posdStart(m, r, healthy); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
	}
	return 0
}

// TestKilledInEachStep kills (SIGKILL) an update in each step, then lets the
// supervisor start the device again and again: it must end on a working slot with
// the update either committed or rolled back, never in between, and a rollback must
// bring back the store as v1 left it.
func TestKilledInEachStep(t *testing.T) {
	k := newKey(t)
	pubText, _ := k.pub.MarshalText()
	cases := []struct {
		kill    Step
		healthy bool
		want    string // the slot's posd at the end
		result  string
	}{
		{StepDownload, true, "v2", ResultSucceeded},
		{StepVerify, true, "v2", ResultSucceeded},
		{StepInstall, true, "v2", ResultSucceeded},
		{StepSwitch, true, "v2", ResultSucceeded},
		{StepVerifyNew, true, "v2", ResultSucceeded},
		{StepCommit, true, "v2", ResultSucceeded},
		{StepVerifyNew, false, "v1", ResultFailed},
		{StepRollback, false, "v1", ResultFailed},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/healthy=%v", c.kill, c.healthy), func(t *testing.T) {
			root := t.TempDir()
			r := newRig(t, root, k)
			os.WriteFile(filepath.Join(root, "key.pub"), pubText, 0o600)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "FIRMWARE_CHILD_DIR="+root, "FIRMWARE_CHILD_KILL="+string(c.kill), "FIRMWARE_CHILD_HEALTHY="+map[bool]string{true: "1"}[c.healthy])
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed in %s: %v\n%s", c.kill, err, out)
			}
			// The device starts again: the supervisor's Boot, then posd, until idle.
			var chain []string
			for i := 0; ; i++ {
				if i == 6 {
					t.Fatalf("no end after %d starts: %v", i, chain)
				}
				m, err := r.open(nil)
				if err != nil {
					t.Fatal(err)
				}
				st := m.State()
				if st.Update == nil {
					if st.Last == nil || st.Last.Result != c.result {
						t.Fatalf("ended with %+v, want %s (chain %v)", st.Last, c.result, chain)
					}
					break
				}
				chain = append(chain, string(st.Update.Step))
				if _, err := m.Boot(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := posdStart(m, r, c.healthy); err != nil {
					t.Fatal(err)
				}
			}
			if got := slotContent(t, r.slots, mustRunning(t, r.slots)); got != c.want {
				t.Errorf("current runs %q, want %q", got, c.want)
			}
			db, _ := os.ReadFile(r.db)
			if c.result == ResultFailed && string(db) != "store written by v1" {
				t.Errorf("after the rollback the store is %q", db)
			}
			m, _ := r.open(nil)
			if st := m.State(); c.result == ResultSucceeded && (st.Floor != "1.5" || st.Version != "2.0") {
				t.Errorf("committed state %+v", st)
			} else if c.result == ResultFailed && st.Floor != "" {
				t.Errorf("a rollback raised the floor: %+v", st)
			}
			if _, err := os.Stat(filepath.Join(r.state, SnapshotFile)); err == nil {
				t.Error("the snapshot outlived the update")
			}
		})
	}
}

func mustRunning(t *testing.T, f Files) string {
	s, err := f.Running()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCrashLoopRollsBack: a new version that dies at every start never commits;
// after MaxAttempts starts Boot puts the old slot back by itself.
func TestCrashLoopRollsBack(t *testing.T) {
	r := newRig(t, t.TempDir(), newKey(t))
	m, err := r.open(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := startUpdate(m, r); err != nil {
		t.Fatal(err)
	}
	var starts int
	for i := 0; i < 10; i++ {
		a, err := m.Boot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a.RolledBack != "" {
			if !strings.Contains(a.RolledBack, "stopped 3 times") {
				t.Errorf("reason %q", a.RolledBack)
			}
			break
		}
		starts++
		os.WriteFile(r.db, []byte("half-migrated by a crashing v2"), 0o600)
		// v2 crashes here, before its health check.
	}
	if starts != 3 {
		t.Errorf("v2 started %d times, want 3", starts)
	}
	if got := slotContent(t, r.slots, mustRunning(t, r.slots)); got != "v1" {
		t.Fatalf("runs %q", got)
	}
	if db, _ := os.ReadFile(r.db); string(db) != "store written by v1" {
		t.Errorf("store %q", db)
	}
	st := m.State()
	if st.Last == nil || st.Last.Result != ResultFailed || st.Update != nil {
		t.Errorf("state %+v", st)
	}
	// A second update to the same version is possible after the rollback.
	if err := m.Begin(Update{ID: "again", Source: "flash", File: r.art}); err != nil {
		t.Fatal(err)
	}
}

// TestFloorRefusesAfterCommit: once 2.0 (min_version 1.5) committed, an artifact
// of 1.4 is refused and changes nothing.
func TestFloorRefusesAfterCommit(t *testing.T) {
	k := newKey(t)
	root := t.TempDir()
	r := newRig(t, root, k)
	m, _ := r.open(nil)
	if err := startUpdate(m, r); err != nil {
		t.Fatal(err)
	}
	m.Boot(context.Background())
	if err := posdStart(m, r, true); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(root, "old.wlf")
	os.WriteFile(old, packBytes(t, k, manifest("1.4", ""), map[string]string{"posd": "v1.4"}), 0o600)
	if err := m.Begin(Update{ID: "down", Source: "usb", File: old}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Check()
	if !errors.Is(err, ErrDowngrade) {
		t.Fatalf("got %v", err)
	}
	m.Fail(err)
	st := m.State()
	if st.Last.Result != ResultRejected || slotContent(t, r.slots, SlotA) != "v1" || mustRunning(t, r.slots) != SlotB {
		t.Errorf("state %+v", st.Last)
	}
}

// TestTryboot drives the tryboot backend against a directory standing for the boot
// partition and a reboot hook that records its arguments.
func TestTryboot(t *testing.T) {
	k := newKey(t)
	root := t.TempDir()
	boot := filepath.Join(root, "boot")
	os.MkdirAll(boot, 0o755)
	os.WriteFile(filepath.Join(boot, AutobootFile), []byte("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"), 0o644)
	hook := filepath.Join(root, "reboot.sh")
	log := filepath.Join(root, "reboots")
	os.WriteFile(hook, []byte("#!/bin/sh\necho \"$@\" >> "+log+"\n"), 0o755)
	partFile := filepath.Join(root, "partition")
	setPart := func(n byte) { os.WriteFile(partFile, []byte{0, 0, 0, n}, 0o644) }
	setPart(2)
	tb := Tryboot{BootDir: boot, Partitions: map[string]int{SlotA: 2, SlotB: 3},
		Devices:    map[string]string{"b/rootfs.img": filepath.Join(root, "mmcblk0p3"), "a/rootfs.img": filepath.Join(root, "mmcblk0p2")},
		StagingDir: root, PartitionFile: partFile, Reboot: []string{hook}}
	art := filepath.Join(root, "img.wlf")
	os.WriteFile(art, packBytes(t, k, manifest("2.0", ""), map[string]string{"rootfs.img": "ROOTFS v2"}), 0o600)
	m, err := OpenMachine(MachineConfig{Dir: filepath.Join(root, "fw"), Backend: tb, Keys: []minisign.PublicKey{k.pub}, Arch: runtime.GOARCH, Board: "rpi4", VerifyTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	autoboot := func() string { b, _ := os.ReadFile(filepath.Join(boot, AutobootFile)); return string(b) }
	if err := m.Begin(Update{ID: "img", Source: "usb", File: art}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(nil, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "mmcblk0p3")); string(b) != "ROOTFS v2" {
		t.Fatalf("partition 3 holds %q", b)
	}
	if err := m.Switch(Health{}); err != nil {
		t.Fatal(err)
	}
	if got := autoboot(); got != "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n" {
		t.Fatalf("autoboot after switch:\n%s", got)
	}
	if err := tb.Restart(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); string(b) != "0 tryboot\n" {
		t.Fatalf("reboot called with %q", b)
	}
	// The bootloader fell back to partition 2 (the new system never came up).
	setPart(2)
	m.Boot(context.Background()) // the old system's first start counts the attempt
	a, err := m.Boot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.RolledBack == "" || !strings.Contains(a.RolledBack, "did not boot") {
		t.Fatalf("boot action %+v", a)
	}
	// A second update that does come up commits: [all] names partition 3.
	m.Begin(Update{ID: "img2", Source: "usb", File: art})
	m.Check()
	if err := m.Install(nil, nil); err != nil {
		t.Fatal(err)
	}
	m.Switch(Health{})
	setPart(3)
	if a, _ := m.Boot(context.Background()); !a.Trial {
		t.Fatalf("not a trial: %+v", a)
	}
	if _, ok := m.Trial("2.0"); !ok {
		t.Fatal("no trial")
	}
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := autoboot(); got != "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n" {
		t.Fatalf("autoboot after commit:\n%s", got)
	}
	if run, _ := tb.Running(); run != SlotB {
		t.Errorf("running %s", run)
	}
	_ = io.EOF
}

func TestJobSignedRoundTrip(t *testing.T) {
	k, other := newKey(t), newKey(t)
	j := Job{JobID: "fw-2-0", Version: "2.0", URL: "https://files.example/posd-2.0.wlf", ManifestSHA256: strings.Repeat("ab", 32), Size: 1000}
	j.Target.Group = "seoul"
	p, err := SignJob(k.priv, j)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenJob([]minisign.PublicKey{k.pub}, p)
	if err != nil || got.URL != j.URL || got.Target.Group != "seoul" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := OpenJob([]minisign.PublicKey{other.pub}, p); !errors.Is(err, ErrUntrustedKey) {
		t.Errorf("untrusted: %v", err)
	}
	tampered := strings.Replace(string(p), "A", "B", 1)
	if _, err := OpenJob([]minisign.PublicKey{k.pub}, []byte(tampered)); err == nil {
		t.Error("a tampered job opened")
	}
}

func FuzzOpenJob(f *testing.F) {
	k := newKey(f)
	j := Job{JobID: "j", Version: "1.0", URL: "http://h/x.wlf", ManifestSHA256: strings.Repeat("00", 32), Size: 1, Target: fleetAll()}
	p, _ := SignJob(k.priv, j)
	f.Add(p)
	f.Fuzz(func(t *testing.T, b []byte) {
		OpenJob([]minisign.PublicKey{k.pub}, b)
		ParseJob(b)
		ParseJobReport(b)
	})
}

// TestHealthWorse: the new version must find the scanner and printer at least as
// healthy as the old one did; better or equal passes.
func TestHealthWorse(t *testing.T) {
	for _, tc := range []struct {
		before, now Health
		worse       string // a part of the reason; "" when not worse
	}{
		{Health{PrinterState: PrinterOK}, Health{PrinterState: PrinterOK}, ""},
		{Health{PrinterState: PrinterOK}, Health{PrinterState: PrinterNoStatus}, ""},
		{Health{PrinterState: PrinterNotReady}, Health{PrinterState: PrinterOK}, ""},
		{Health{PrinterState: PrinterNotReady}, Health{PrinterState: PrinterNotReady}, ""},
		{Health{PrinterState: PrinterUnreachable}, Health{PrinterState: PrinterUnreachable}, ""},
		{Health{}, Health{PrinterState: PrinterAbsent}, ""}, // a state written before printer states
		{Health{PrinterState: PrinterOK}, Health{PrinterState: PrinterNotReady, PrinterDetail: "paper out"}, "printer was ready before the update and is not ready now (paper out)"},
		{Health{PrinterState: PrinterOK}, Health{PrinterState: PrinterUnreachable}, "is unreachable now"},
		{Health{PrinterState: PrinterNotReady}, Health{PrinterState: PrinterUnreachable}, "printer was not ready"},
		{Health{PrinterState: PrinterOK}, Health{PrinterState: "bogus"}, "printer"},
		{Health{Scanner: true, PrinterState: PrinterOK}, Health{PrinterState: PrinterOK}, "scanner"},
		{Health{Scanner: false}, Health{Scanner: true}, ""},
	} {
		got := tc.now.Worse(tc.before)
		if (tc.worse == "") != (got == "") || !strings.Contains(got, tc.worse) {
			t.Errorf("%+v after %+v: %q, want %q", tc.now, tc.before, got, tc.worse)
		}
	}
}

// TestRollbackToThePrevious: after a commit the previous version stays in the other
// slot; BeginRollback goes back to it through install (the snapshot only), switch, a
// trial and a commit, and the floor still holds: a previous version below it is
// refused and nothing changes.
func TestRollbackToThePrevious(t *testing.T) {
	for _, tc := range []struct {
		min     string
		refused bool
	}{{"1.0", false}, {"1.5", true}} {
		k := newKey(t)
		root := t.TempDir()
		r := newRig(t, root, k)
		os.WriteFile(r.art, packBytes(t, k, manifest("2.0", tc.min), map[string]string{"posd": "v2"}), 0o600)
		m, _ := r.open(nil)
		if _, err := m.BeginRollback("too-early"); err == nil {
			t.Fatal("a rollback with no previous version began")
		}
		if err := m.NoteVersion("1.0"); err != nil {
			t.Fatal(err)
		}
		if err := startUpdate(m, r); err != nil {
			t.Fatal(err)
		}
		m.Boot(context.Background())
		if err := posdStart(m, r, true); err != nil {
			t.Fatal(err)
		}
		st := m.State()
		if st.Previous == nil || *st.Previous != (Previous{Slot: SlotA, Version: "1.0"}) || st.Version != "2.0" {
			t.Fatalf("after the commit: %+v previous %+v", st, st.Previous)
		}
		u, err := m.BeginRollback("rollback-1")
		if tc.refused {
			if !errors.Is(err, ErrDowngrade) || m.State().Update != nil || mustRunning(t, r.slots) != SlotB {
				t.Fatalf("rollback below the floor %s: %v %+v", tc.min, err, m.State().Update)
			}
			continue
		}
		if err != nil || u.To != SlotA || u.Version != "1.0" {
			t.Fatalf("begin rollback: %+v %v", u, err)
		}
		os.WriteFile(r.db, []byte("store with sales made on 2.0"), 0o600)
		if err := m.Install(copySnapshot(r.db), nil); err != nil {
			t.Fatal(err)
		}
		if err := m.Switch(Health{}); err != nil {
			t.Fatal(err)
		}
		if a, err := m.Boot(context.Background()); err != nil || !a.Trial || mustRunning(t, r.slots) != SlotA {
			t.Fatalf("boot: %+v %v", a, err)
		}
		if _, ok := m.Trial("1.0"); !ok {
			t.Fatal("1.0 is not on trial")
		}
		if err := m.Commit(); err != nil {
			t.Fatal(err)
		}
		st = m.State()
		if st.Version != "1.0" || st.Slot != SlotA || st.Floor != "1.0" || st.Last.Result != ResultSucceeded || *st.Previous != (Previous{Slot: SlotB, Version: "2.0"}) {
			t.Fatalf("after the rollback: %+v %+v %+v", st, st.Last, st.Previous)
		}
		if b, _ := os.ReadFile(r.db); string(b) != "store with sales made on 2.0" {
			t.Fatalf("the store was taken back: %q", b)
		}
		if slotContent(t, r.slots, SlotB) != "v2" {
			t.Fatal("slot b lost 2.0")
		}
	}
}
