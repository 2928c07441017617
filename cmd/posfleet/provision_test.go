package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/pairing"
)

// TestProvisionMakesAVerifiableQR: -init-ca makes a test fleet's CA, and provision
// makes a QR (PNG and text) that verifies with the fleet's public key, pins that CA,
// and whose secret is recorded hashed for the signer.
func TestProvisionMakesAVerifiableQR(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	call := func(args ...string) int {
		out.Reset()
		errb.Reset()
		return run(context.Background(), args, &out, &errb)
	}
	if code := call("keygen", "-o", filepath.Join(dir, "key")); code != 0 {
		t.Fatalf("keygen: %s", errb.String())
	}
	if code := call("provision", "-init-ca", filepath.Join(dir, "ca"), "-hosts", "mqtt.example.com,127.0.0.1"); code != 0 {
		t.Fatalf("init-ca: %s", errb.String())
	}
	if code := call("provision", "-init-ca", filepath.Join(dir, "ca"), "-hosts", "x"); code == 0 {
		t.Fatal("init-ca overwrote a CA")
	}
	secrets := filepath.Join(dir, "secrets.json")
	args := []string{"provision", "-device-id", "shop-9", "-broker", "ssl://mqtt.example.com:8883", "-enroll-url", "https://mqtt.example.com:8443",
		"-group", "kr", "-key", filepath.Join(dir, "key", "posfleet.key"), "-ca", filepath.Join(dir, "ca", "ca.crt"),
		"-secrets", secrets, "-o", filepath.Join(dir, "qr.png"), "-text", filepath.Join(dir, "qr.txt"), "-json"}
	if code := call(args...); code != 0 {
		t.Fatalf("provision: %s", errb.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "qr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := pairing.Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), q.Payload.Secret) {
		t.Fatal("provision printed the one-time secret")
	}
	pub, err := minisign.PublicKeyFromFile(filepath.Join(dir, "key", "posfleet.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Verify([]minisign.PublicKey{pub}, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	ca, err := pairing.ReadCert(filepath.Join(dir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if q.Payload.CAFingerprint != pairing.Fingerprint(ca.Raw) || q.Payload.DeviceID != "shop-9" || len(q.Payload.Groups) != 1 {
		t.Fatalf("payload %+v", q.Payload)
	}
	rec, _ := os.ReadFile(secrets)
	if !strings.Contains(string(rec), pairing.RecordFor(q.Payload).SecretSHA256) || strings.Contains(string(rec), q.Payload.Secret) {
		t.Fatalf("secrets file: %s", rec)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "qr.png")); fi == nil || fi.Size() == 0 {
		t.Fatal("no PNG")
	}
	// Missing flags are a usage error; a plaintext broker is refused.
	if code := call("provision", "-device-id", "x"); code != exitUsage {
		t.Fatalf("missing flags: exit %d", code)
	}
	args[4] = "tcp://mqtt.example.com:1883"
	if code := call(args...); code != exitError || !strings.Contains(errb.String(), "TLS broker URL") {
		t.Fatalf("plaintext broker: exit %d %s", code, errb.String())
	}
}
