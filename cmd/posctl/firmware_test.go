package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/daemon"
	"github.com/walletless/walletless/firmware"
)

// fakePosd writes a stand-in posd that answers -version like posd does.
func fakePosdBin(t *testing.T, dir, version string) string {
	t.Helper()
	p := filepath.Join(dir, "posd-"+version)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho posd "+version+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFirmwareInitSeedsAndUpgrades is what the package's postinst relies on:
// `posctl firmware init` sets the slots up on a first install, does nothing when
// run again, puts a newer packaged posd into the running slot on an upgrade, and
// leaves the slot alone while an update runs or when the terminal runs a newer
// version than the package's; an older configuration without firmware.slots_dir
// works with -slots.
func TestFirmwareInitSeedsAndUpgrades(t *testing.T) {
	dir := t.TempDir()
	slots := filepath.Join(dir, "slots")
	data := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "posd.json")
	b, _ := json.Marshal(map[string]any{"version": 1, "data_dir": data, "firmware": map[string]any{"slots_dir": slots, "backend": "files"}})
	os.WriteFile(cfgFile, b, 0o600)
	slotA := func() string {
		b, _ := os.ReadFile(filepath.Join(slots, "a", "posd"))
		return string(b)
	}
	init := func(posd string, extra ...string) string {
		t.Helper()
		code, out, errOut := runPosctl(t, "", append([]string{"firmware", "init", "-config", cfgFile, "-posd", posd}, extra...)...)
		if code != 0 {
			t.Fatalf("firmware init %s: %d %s %s", posd, code, out, errOut)
		}
		return out
	}
	v10, v11, v09 := fakePosdBin(t, dir, "1.0.0"), fakePosdBin(t, dir, "1.1.0"), fakePosdBin(t, dir, "0.9.0")

	if out := init(v10); !strings.Contains(out, "slots set up") || !strings.Contains(slotA(), "posd 1.0.0") {
		t.Fatalf("first install: %s / %q", out, slotA())
	}
	if run, _ := (firmware.Files{Dir: slots}).Running(); run != firmware.SlotA {
		t.Fatalf("current is %q", run)
	}
	if out := init(v10); !strings.Contains(out, "already runs the packaged posd 1.0.0") {
		t.Fatalf("again: %s", out)
	}
	if out := init(v11); !strings.Contains(out, "slot a now holds the packaged posd 1.1.0") || !strings.Contains(slotA(), "posd 1.1.0") {
		t.Fatalf("upgrade: %s / %q", out, slotA())
	}

	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := daemon.OpenFirmware(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The terminal runs 2.0.0 (a firmware update): an older package leaves it.
	if err := m.NoteVersion("2.0.0"); err != nil {
		t.Fatal(err)
	}
	if out := init(v09); !strings.Contains(out, "newer than the packaged posd 0.9.0") || !strings.Contains(slotA(), "posd 1.1.0") {
		t.Fatalf("older package: %s / %q", out, slotA())
	}
	if err := m.NoteVersion("1.1.0"); err != nil {
		t.Fatal(err)
	}
	// An update in progress: the slot is left for it.
	if err := m.Begin(firmware.Update{ID: "flash-1", Source: "flash", File: filepath.Join(dir, "x.wlf")}); err != nil {
		t.Fatal(err)
	}
	v12 := fakePosdBin(t, dir, "1.2.0")
	if out := init(v12); !strings.Contains(out, "is in step verify") || !strings.Contains(slotA(), "posd 1.1.0") {
		t.Fatalf("during an update: %s / %q", out, slotA())
	}
	m.Fail(os.ErrNotExist)

	// An older configuration (no firmware section) with -slots.
	old := filepath.Join(dir, "old.json")
	b, _ = json.Marshal(map[string]any{"version": 1, "data_dir": data})
	os.WriteFile(old, b, 0o600)
	code, out, errOut := runPosctl(t, "", "firmware", "init", "-config", old, "-posd", v12, "-slots", slots)
	if code != 0 || !strings.Contains(out, "packaged posd 1.2.0") || !strings.Contains(slotA(), "posd 1.2.0") {
		t.Fatalf("old configuration with -slots: %d %s %s / %q", code, out, errOut, slotA())
	}
	if code, _, errOut := runPosctl(t, "", "firmware", "init", "-config", old, "-posd", v12); code == 0 || !strings.Contains(errOut, "slots_dir") {
		t.Fatalf("old configuration without -slots: %d %s", code, errOut)
	}
}
