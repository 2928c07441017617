package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/walletless/walletless/firmware"
)

// TestFirmwarePack: posfleet firmware pack makes a file the device side verifies,
// with the payload names given by BINARY=NAME.
func TestFirmwarePack(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kt, _ := priv.MarshalText()
	key := filepath.Join(dir, "posfleet.key")
	os.WriteFile(key, kt, 0o600)
	bin := filepath.Join(dir, "posd-linux-arm64")
	os.WriteFile(bin, []byte("\x7fELF posd 2.0"), 0o755)
	out := filepath.Join(dir, "posd.wlf")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"firmware", "pack", "-key", key, "-version", "2.0", "-min-version", "1.5",
		"-arch", "arm64", "-board", "rpi4", "-o", out, bin + "=posd"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	h, err := firmware.Verify(out, []minisign.PublicKey{pub}, firmware.Target{Arch: "arm64", Board: "rpi4", Floor: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Manifest.Version != "2.0" || h.Manifest.MinVersion != "1.5" || h.Manifest.Payloads[0].Name != "posd" || h.Manifest.Payloads[0].Mode != 0o755 {
		t.Errorf("manifest %+v", h.Manifest)
	}
	if !strings.Contains(stdout.String(), "version 2.0 for arm64/rpi4, min_version 1.5") {
		t.Errorf("output: %s", stdout.String())
	}
	// A bad version is a usage error and writes nothing.
	code = run(context.Background(), []string{"firmware", "pack", "-key", key, "-version", "2.0-beta", "-o", filepath.Join(dir, "bad.wlf"), bin}, &stdout, &stderr)
	if code == 0 {
		t.Error("a bad version packed")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.wlf")); err == nil {
		t.Error("a refused pack left a file")
	}
}
