package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/pairing"
	"github.com/walletless/walletless/store"
)

// pairedDir writes a saved pairing as posd leaves it (pairing.json last, the key,
// certificate and CA 0600) plus the used-QR record a reset must keep.
func pairedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st := pairing.State{V: pairing.Version, DeviceID: "shop-0042", Broker: "ssl://mqtt.example:8883",
		Groups: []string{"seoul"}, EnrollURL: "https://enroll.example:8443", CAFingerprint: strings.Repeat("ab", 32),
		CertFingerprint: strings.Repeat("cd", 32), CertNotAfter: time.Date(2027, 12, 5, 0, 0, 0, 0, time.UTC),
		Nonce: "n1", PairedAt: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC),
		CertFile: filepath.Join(dir, pairing.CertFile), KeyFile: filepath.Join(dir, pairing.KeyFile), CAFile: filepath.Join(dir, pairing.CAFile)}
	for _, f := range []string{st.CertFile, st.KeyFile, st.CAFile} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, pairing.UsedFile), []byte(`["n1"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, pairing.StateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := pairing.Load(dir); !ok || err != nil {
		t.Fatalf("the test's pairing does not load: %v", err)
	}
	return dir
}

func TestPairingStatusAndReset(t *testing.T) {
	empty := t.TempDir()
	if code, out, errb := runPosctl(t, "", "pairing", "status", "-data", empty); code != 0 || !strings.Contains(out, "not paired") {
		t.Fatalf("status of a new box: %d %q %q", code, out, errb)
	}
	dir := pairedDir(t)
	code, out, errb := runPosctl(t, "", "pairing", "status", "-data", dir)
	if code != 0 || !strings.Contains(out, "paired as shop-0042") || !strings.Contains(out, "ssl://mqtt.example:8883") || !strings.Contains(out, "seoul") {
		t.Fatalf("status: %d %q %q", code, out, errb)
	}

	// posd running holds its store: the reset is refused and nothing changes.
	s, err := store.Open(filepath.Join(dir, "posd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errb = runPosctl(t, "", "pairing", "reset", "-yes", "-timeout", "100ms", "-data", dir)
	s.Close()
	if code != 1 || !strings.Contains(errb, "posd is running") {
		t.Fatalf("reset while posd runs: %d %q", code, errb)
	}
	if _, ok, _ := pairing.Load(dir); !ok {
		t.Fatal("a refused reset removed the pairing")
	}

	// Answering no changes nothing.
	if code, out, _ := runPosctl(t, "n\n", "pairing", "reset", "-data", dir); code != 1 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("reset answered no: %d %q", code, out)
	}
	if _, ok, _ := pairing.Load(dir); !ok {
		t.Fatal("reset answered no removed the pairing")
	}

	if code, out, errb := runPosctl(t, "y\n", "pairing", "reset", "-data", dir); code != 0 || !strings.Contains(out, "pairing removed") {
		t.Fatalf("reset: %d %q %q", code, out, errb)
	}
	if _, ok, err := pairing.Load(dir); ok || err != nil {
		t.Fatalf("after a reset the box is still paired (%v)", err)
	}
	for _, f := range []string{pairing.CertFile, pairing.KeyFile, pairing.CAFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Fatalf("%s is left after a reset: %v", f, err)
		}
	}
	if used, err := pairing.Used(dir, "n1"); err != nil || !used {
		t.Fatalf("a reset forgot the used QR (used=%v, %v): an old QR would pair again", used, err)
	}
	if code, out, _ := runPosctl(t, "", "pairing", "reset", "-data", dir); code != 0 || !strings.Contains(out, "nothing to reset") {
		t.Fatalf("second reset: %d %q", code, out)
	}
}
