package firmware

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Slot names.
const (
	SlotA = "a"
	SlotB = "b"
)

// Other returns the slot that is not s.
func Other(s string) string {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// Backend is where firmware is installed and how the device switches to it.
type Backend interface {
	// Name is "files" or "tryboot".
	Name() string
	// Running is the slot the running system came from.
	Running() (string, error)
	// Install writes the verified artifact whose payloads r is positioned at into
	// slot, which must not be the running one. The slot's old content stays until
	// every payload is verified.
	Install(slot string, r io.Reader, h Header, progress func(done, total int64)) error
	// Switch makes slot the one that runs at the next start, on trial.
	Switch(slot string) error
	// Commit makes slot permanent.
	Commit(slot string) error
	// Rollback makes slot (the previous one) run at the next start, permanently.
	Rollback(slot string) error
	// Restart starts the slot chosen by Switch or Rollback: the tryboot backend
	// reboots (with the tryboot flag on trial); the files backend does nothing, posd
	// exits with ExitRestart and its supervisor starts current/posd again.
	Restart(ctx context.Context, trial bool) error
}

// ExitRestart is posd's exit status after it switched or rolled back a slot: the
// supervisor (systemd's Restart=always, or posctl firmware supervise) starts
// current/posd again at once. It is EX_TEMPFAIL of sysexits.h.
const ExitRestart = 75

// Files is the files backend: slots a and b are directories under Dir and the link
// Dir/current names the one that runs; the service runs Dir/current/posd.
type Files struct{ Dir string }

// CurrentLink is the name of the files backend's link to the running slot.
const CurrentLink = "current"

// Name is "files".
func (f Files) Name() string { return "files" }

// Running reads the current link.
func (f Files) Running() (string, error) {
	t, err := os.Readlink(filepath.Join(f.Dir, CurrentLink))
	if err != nil {
		return "", fmt.Errorf("firmware: slots are not set up (posctl firmware init): %w", err)
	}
	t = filepath.Base(t)
	if t != SlotA && t != SlotB {
		return "", fmt.Errorf("firmware: %s points to %q, not a or b", filepath.Join(f.Dir, CurrentLink), t)
	}
	return t, nil
}

// Init sets up the slots with binary as slot a's posd, when no current link exists.
func (f Files) Init(binary string) error {
	if _, err := f.Running(); err == nil {
		return fmt.Errorf("firmware: %s is already set up", f.Dir)
	}
	if err := os.MkdirAll(filepath.Join(f.Dir, SlotA), 0o755); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	b, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(f.Dir, SlotA, "posd"), b, 0o755); err != nil {
		return err
	}
	return f.link(SlotA)
}

// Replace puts binary in place of slot's posd (a temporary file renamed over it: a
// posd running from it keeps its old file). `posctl firmware init` does it on a
// package upgrade, for the running slot, while no update is in progress.
func (f Files) Replace(slot, binary string) error {
	if slot != SlotA && slot != SlotB {
		return fmt.Errorf("firmware: no slot %q", slot)
	}
	b, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	return writeFileAtomic(filepath.Join(f.Dir, slot, "posd"), b, 0o755)
}

// Install extracts into Dir/.staging-SLOT and renames it to Dir/SLOT.
func (f Files) Install(slot string, r io.Reader, h Header, progress func(done, total int64)) error {
	if run, err := f.Running(); err != nil {
		return err
	} else if run == slot {
		return fmt.Errorf("firmware: slot %s is running, install into the other one", slot)
	}
	staging := filepath.Join(f.Dir, ".staging-"+slot)
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	if err := Extract(r, h, staging, progress); err != nil {
		return err
	}
	dst, old := filepath.Join(f.Dir, slot), filepath.Join(f.Dir, ".old-"+slot)
	os.RemoveAll(old)
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("firmware: %w", err)
	}
	if err := os.Rename(staging, dst); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	os.RemoveAll(old)
	return syncDir(f.Dir)
}

// link points current at slot by renaming a new link over it.
func (f Files) link(slot string) error {
	tmp := filepath.Join(f.Dir, ".current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(slot, tmp); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(f.Dir, CurrentLink)); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	return syncDir(f.Dir)
}

// Switch points current at slot.
func (f Files) Switch(slot string) error {
	if _, err := os.Stat(filepath.Join(f.Dir, slot, "posd")); err != nil {
		return fmt.Errorf("firmware: slot %s has no posd: %w", slot, err)
	}
	return f.link(slot)
}

// Commit makes sure current points at slot.
func (f Files) Commit(slot string) error { return f.link(slot) }

// Rollback points current at slot.
func (f Files) Rollback(slot string) error { return f.link(slot) }

// Restart does nothing: posd exits with ExitRestart.
func (f Files) Restart(context.Context, bool) error { return nil }

// Tryboot is the Raspberry Pi backend: each slot is a boot partition (and the root
// file system its cmdline.txt names); BootDir is the partition holding autoboot.txt,
// whose [all] section names the committed partition and [tryboot] the one a
// `reboot '0 tryboot'` starts once.
type Tryboot struct {
	BootDir string
	// Partitions maps slot a and b to their boot partition numbers (e.g. 2 and 3).
	Partitions map[string]int
	// Devices maps "SLOT/PAYLOAD" (e.g. "b/boot.img") to the block device (or file)
	// the payload is written to.
	Devices map[string]string
	// StagingDir holds the verified payloads before they are written to a device.
	StagingDir string
	// PartitionFile says which partition the bootloader started (on a Pi
	// /proc/device-tree/chosen/bootloader/partition, a big-endian uint32); empty or
	// unreadable: the [all] partition of autoboot.txt.
	PartitionFile string
	// Reboot is the command that reboots; the argument "0 tryboot" is added on trial.
	Reboot []string
}

// AutobootFile is the name of the tryboot control file in the boot partition.
const AutobootFile = "autoboot.txt"

// Name is "tryboot".
func (t Tryboot) Name() string { return "tryboot" }

func (t Tryboot) slotOf(part int) (string, error) {
	for s, p := range t.Partitions {
		if p == part {
			return s, nil
		}
	}
	return "", fmt.Errorf("firmware: boot partition %d is neither slot a nor b", part)
}

// autoboot reads autoboot.txt: the [all] and [tryboot] boot_partition.
func (t Tryboot) autoboot() (all, try int, err error) {
	f, err := os.Open(filepath.Join(t.BootDir, AutobootFile))
	if err != nil {
		return 0, 0, fmt.Errorf("firmware: %w", err)
	}
	defer f.Close()
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if v, ok := strings.CutPrefix(line, "boot_partition="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, 0, fmt.Errorf("firmware: autoboot.txt: %q", line)
			}
			switch section {
			case "[all]":
				all = n
			case "[tryboot]":
				try = n
			}
		}
	}
	if all == 0 {
		return 0, 0, fmt.Errorf("firmware: autoboot.txt has no [all] boot_partition")
	}
	return all, try, sc.Err()
}

func (t Tryboot) write(all, try int) error {
	s := fmt.Sprintf("[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n", all, try)
	return writeFileAtomic(filepath.Join(t.BootDir, AutobootFile), []byte(s), 0o644)
}

// Running is the partition the bootloader started, or autoboot.txt's [all] one.
func (t Tryboot) Running() (string, error) {
	if t.PartitionFile != "" {
		if b, err := os.ReadFile(t.PartitionFile); err == nil && len(b) == 4 {
			return t.slotOf(int(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])))
		}
	}
	all, _, err := t.autoboot()
	if err != nil {
		return "", err
	}
	return t.slotOf(all)
}

// Install verifies every payload into StagingDir, then copies each to its device.
func (t Tryboot) Install(slot string, r io.Reader, h Header, progress func(done, total int64)) error {
	if run, err := t.Running(); err != nil {
		return err
	} else if run == slot {
		return fmt.Errorf("firmware: slot %s is running, install into the other one", slot)
	}
	for _, p := range h.Manifest.Payloads {
		if t.Devices[slot+"/"+p.Name] == "" {
			return fmt.Errorf("firmware: no device for payload %s of slot %s (firmware.tryboot_devices)", p.Name, slot)
		}
	}
	staging := filepath.Join(t.StagingDir, ".staging-"+slot)
	os.RemoveAll(staging)
	if err := Extract(r, h, staging, progress); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	for _, p := range h.Manifest.Payloads {
		if err := copyToDevice(filepath.Join(staging, p.Name), t.Devices[slot+"/"+p.Name]); err != nil {
			return err
		}
	}
	return nil
}

func copyToDevice(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("firmware: writing %s: %w", dst, err)
	}
	return nil
}

// Switch names slot's partition under [tryboot], keeping [all].
func (t Tryboot) Switch(slot string) error {
	all, _, err := t.autoboot()
	if err != nil {
		return err
	}
	return t.write(all, t.Partitions[slot])
}

// Commit names slot's partition under [all] and the other under [tryboot].
func (t Tryboot) Commit(slot string) error {
	return t.write(t.Partitions[slot], t.Partitions[Other(slot)])
}

// Rollback is Commit of the previous slot.
func (t Tryboot) Rollback(slot string) error { return t.Commit(slot) }

// Restart runs the reboot command, with "0 tryboot" on trial.
func (t Tryboot) Restart(ctx context.Context, trial bool) error {
	if len(t.Reboot) == 0 {
		return fmt.Errorf("firmware: no reboot command")
	}
	args := append([]string{}, t.Reboot[1:]...)
	if trial {
		args = append(args, "0 tryboot")
	}
	if out, err := exec.CommandContext(ctx, t.Reboot[0], args...).CombinedOutput(); err != nil {
		return fmt.Errorf("firmware: %s: %w: %s", t.Reboot[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}
