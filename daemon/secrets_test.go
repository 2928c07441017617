package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/internal/testpki"
	"github.com/walletless/walletless/internal/wirecheck"
)

// TestSecretFilesReadableByOthersStopPosd: a password file or a TLS key that group or
// others can read stops posd before it connects, with the chmod to run; a
// plaintext password needs mqtt.allow_plaintext.
func TestSecretFilesReadableByOthersStopPosd(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte("s3cret-password\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := config.Default()
	base.DataDir = filepath.Join(dir, "data")
	base.API.Addr = "127.0.0.1:0"
	base.MQTT.Username, base.MQTT.PasswordFile = "shop-7", pw

	// Over tcp:// the password is refused whatever the file's mode.
	if err := Run(refuseCtx(t), Options{Config: base}); err == nil || !strings.Contains(err.Error(), "mqtt.allow_plaintext") {
		t.Fatalf("password over plaintext: %v", err)
	}
	cfg := base
	cfg.MQTT.AllowPlaintext = true
	err := Run(refuseCtx(t), Options{Config: cfg})
	if !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "mqtt.password_file") || !strings.Contains(err.Error(), "chmod 600 "+pw) {
		t.Fatalf("0644 password file: %v", err)
	}

	// A 0644 key for mutual TLS.
	ca := testpki.New(t, dir, "ca")
	cert, key := ca.Issue(t, "shop-7", false)
	os.Chmod(key, 0o644)
	cfg = base
	cfg.MQTT.PasswordFile = ""
	cfg.MQTT.Broker, cfg.MQTT.CAFile, cfg.MQTT.CertFile, cfg.MQTT.KeyFile = "ssl://127.0.0.1:1", ca.File, cert, key
	if err := Run(refuseCtx(t), Options{Config: cfg}); !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+key) {
		t.Fatalf("0644 key file: %v", err)
	}
}

// refuseCtx bounds a Run that should refuse to start: if it starts after all, it
// stops after two seconds and the test fails on the nil error instead of hanging.
func refuseCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPasswordFileAndPrivateDataDir: with a 0600 password file (plaintext allowed on
// loopback) posd starts, and a data directory it finds at 0755 is made 0700.
func TestPasswordFileAndPrivateDataDir(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte("s3cret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "posd"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	defer b.Close()
	tp := startThinPathWith(t, dir, b.URL(), func(c *config.Config) {
		c.MQTT.Username, c.MQTT.PasswordFile, c.MQTT.AllowPlaintext = "shop-7", pw, true
	})
	defer tp.shutdown()
	fi, err := os.Stat(filepath.Join(dir, "posd"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi.Mode(), err)
	}
	if got, err := mqttPassword(config.Config{MQTT: config.MQTT{PasswordFile: pw}}); got != "s3cret-password" || err != nil {
		t.Fatalf("password %q, %v", got, err)
	}
}
