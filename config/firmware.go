package config

import (
	"path/filepath"
	"runtime"
	"time"
)

// Firmware configures signed firmware updates. Without slots_dir posd does not
// update itself (and refuses firmware jobs with that reason).
type Firmware struct {
	// SlotsDir holds the files backend's slots a and b and the current link, or the
	// tryboot backend's staging space.
	SlotsDir string `json:"slots_dir,omitempty"`
	// Backend is "files" (the service runs SLOTS_DIR/current/posd) or "tryboot"
	// (Raspberry Pi A/B boot partitions).
	Backend string `json:"backend"`
	// BootDir is the tryboot backend's boot partition holding autoboot.txt.
	BootDir string `json:"boot_dir,omitempty"`
	// TrybootPartitions maps slots a and b to boot partition numbers (default 2, 3).
	TrybootPartitions map[string]int `json:"tryboot_partitions,omitempty"`
	// TrybootDevices maps "SLOT/PAYLOAD" ("b/rootfs.img") to the device written.
	TrybootDevices map[string]string `json:"tryboot_devices,omitempty"`
	// PartitionFile is where the bootloader says which partition it started.
	PartitionFile string `json:"partition_file,omitempty"`
	// Reboot is the reboot command; "0 tryboot" is added for a trial.
	Reboot []string `json:"reboot,omitempty"`
	// Board is this device's board name; an artifact for another board is refused.
	Board string `json:"board"`
	// Arch overrides the architecture posd was built for (only tests need it).
	Arch string `json:"arch,omitempty"`
	// VerifyTimeout is how long the new version has to pass its health check.
	VerifyTimeout Duration `json:"verify_timeout"`
	// MaxAttempts is how many starts the new version gets before it rolls back.
	MaxAttempts int `json:"max_attempts"`
	// MaxWait is how long an install waits for a quiet counter (no sale in progress,
	// an empty outbox) before it is deferred and reported.
	MaxWait Duration `json:"max_wait"`
	// WatchDir is polled for signed .wlf files (a USB stick's mount point).
	WatchDir string `json:"watch_dir,omitempty"`
	// WatchInterval is how often WatchDir is polled.
	WatchInterval Duration `json:"watch_interval"`
	// TrustedKeys are the minisign public keys firmware must be signed with; empty:
	// fleet.trusted_keys.
	TrustedKeys []string `json:"trusted_keys,omitempty"`
}

func defaultFirmware() Firmware {
	return Firmware{
		Backend: "files", Board: "any", VerifyTimeout: Duration(2 * time.Minute), MaxAttempts: 3,
		MaxWait: Duration(10 * time.Minute), WatchInterval: Duration(5 * time.Second),
		Reboot: []string{"reboot"},
	}
}

// FirmwareKeys are the keys firmware is checked against: trusted_keys, else fleet's.
func (c Config) FirmwareKeys() []string {
	if len(c.Firmware.TrustedKeys) > 0 {
		return c.Firmware.TrustedKeys
	}
	return c.Fleet.TrustedKeys
}

// FirmwareArch is the architecture artifacts must be built for.
func (f Firmware) FirmwareArch() string {
	if f.Arch != "" {
		return f.Arch
	}
	return runtime.GOARCH
}

func (f Firmware) validate(bad func(field, format string, args ...any)) {
	// slots_dir without a trusted key is valid: the service runs from the slots (the
	// package sets them up) and every artifact is refused until a key is trusted.
	if !oneOf(f.Backend, "files", "tryboot") {
		bad("firmware.backend", "%q is not files or tryboot", f.Backend)
	}
	if f.SlotsDir != "" && !filepath.IsAbs(f.SlotsDir) {
		bad("firmware.slots_dir", "%q must be an absolute path", f.SlotsDir)
	}
	if f.Backend == "tryboot" && f.SlotsDir != "" {
		if f.BootDir == "" {
			bad("firmware.boot_dir", "the tryboot backend needs the boot partition's directory")
		}
		if len(f.Reboot) == 0 {
			bad("firmware.reboot", "the tryboot backend needs a reboot command")
		}
		for k, p := range f.TrybootPartitions {
			if (k != "a" && k != "b") || p < 1 || p > 63 {
				bad("firmware.tryboot_partitions", "%q: %d must map a and b to partitions 1-63", k, p)
			}
		}
	}
	if !validID(f.Board) {
		bad("firmware.board", "%q must be 1-64 characters of A-Z a-z 0-9 . _ -", f.Board)
	}
	if f.Arch != "" && !validID(f.Arch) {
		bad("firmware.arch", "%q is not an architecture name", f.Arch)
	}
	if f.VerifyTimeout < Duration(MinVerifyTimeout) || f.VerifyTimeout > Duration(MaxVerifyTimeout) {
		bad("firmware.verify_timeout", "%s is not between %s and %s", time.Duration(f.VerifyTimeout), MinVerifyTimeout, MaxVerifyTimeout)
	}
	if f.MaxAttempts < 1 || f.MaxAttempts > 20 {
		bad("firmware.max_attempts", "%d is not between 1 and 20", f.MaxAttempts)
	}
	if f.MaxWait < Duration(time.Second) || f.MaxWait > Duration(24*time.Hour) {
		bad("firmware.max_wait", "%s is not between 1s and 24h", time.Duration(f.MaxWait))
	}
	if f.WatchInterval < Duration(100*time.Millisecond) || f.WatchInterval > Duration(time.Hour) {
		bad("firmware.watch_interval", "%s is not between 100ms and 1h", time.Duration(f.WatchInterval))
	}
	for i, k := range f.TrustedKeys {
		if !minisignKey(k) {
			bad("firmware.trusted_keys", "key %d is not a minisign public key (the base64 line starting with RW of a .pub file)", i+1)
		}
	}
}
