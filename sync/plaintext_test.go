package sync_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/internal/testpki"
	wsync "github.com/walletless/walletless/sync"
)

// TestTLSFilesNeedATLSURL: a CA file or a client key pair with tcp://, mqtt:// or
// ws:// would leave TLS silently off; NewLink refuses it and names the settings.
func TestTLSFilesNeedATLSURL(t *testing.T) {
	for _, u := range []string{"tcp://127.0.0.1:1883", "mqtt://broker.example:1883", "ws://127.0.0.1:9001"} {
		_, err := wsync.NewLink(wsync.Config{BrokerURL: u, DeviceID: "d", Outbox: newMemOutbox(), OnResult: func(context.Context, wsync.PaymentResult) {},
			CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"})
		if !errors.Is(err, wsync.ErrConfig) || !strings.Contains(err.Error(), "CA file, certificate, key") || !strings.Contains(err.Error(), "ssl://") {
			t.Errorf("%s with TLS files: %v", u, err)
		}
	}
}

// TestKeyFileReadableByOthersIsRefused: a client key of mode 0644 is refused with the
// chmod that fixes it; at 0600 the same pair loads.
func TestKeyFileReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, dir, "ca")
	cert, key := ca.Issue(t, "dev", false)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := wsync.TLSConfig(nil, ca.File, cert, key)
	if !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+key) || !strings.HasPrefix(err.Error(), "sync: client key") {
		t.Fatalf("0644 key: %v", err)
	}
	if _, err := wsync.NewLink(wsync.Config{BrokerURL: "ssl://127.0.0.1:8883", DeviceID: "d", Outbox: newMemOutbox(),
		OnResult: func(context.Context, wsync.PaymentResult) {}, CAFile: ca.File, CertFile: cert, KeyFile: key}); !errors.Is(err, secretfile.ErrTooOpen) {
		t.Fatalf("NewLink with a 0644 key: %v", err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := wsync.TLSConfig(nil, ca.File, cert, key); err != nil {
		t.Fatalf("0600 key: %v", err)
	}
	// testpki writes keys 0600 itself.
	if _, k2 := ca.Issue(t, "dev2", false); mode(t, k2) != 0o600 {
		t.Errorf("testpki key mode %04o", mode(t, k2))
	}
}

func mode(t *testing.T, path string) os.FileMode {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

type lockedBuf struct {
	mu stdsync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestPlaintextWarnsAtEveryConnect: a password over tcp:// (what
// mqtt.allow_plaintext lets through) is warned about at each connection, first and
// after every reconnect; loopback without a password is not.
func TestPlaintextWarnsAtEveryConnect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
		want     int // warnings per connect
	}{{"password", "s3cret-password", 1}, {"loopback without password", "", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := broker.Start("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			addr := b.Addr()
			logs := new(lockedBuf)
			link, err := wsync.NewLink(wsync.Config{
				BrokerURL: b.URL(), DeviceID: "dev-plain", Username: "dev-plain", Password: tc.password,
				Outbox: newMemOutbox(), OnResult: func(context.Context, wsync.PaymentResult) {},
				BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Timeout: 2 * time.Second, Heartbeat: -1,
				Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { link.Run(ctx); close(done) }()
			defer func() { cancel(); <-done; b.Close() }()

			waitFor(t, "first connect", 10*time.Second, func() bool { return link.Stats().Connects == 1 && link.Online() })
			for i := 2; i <= 3; i++ { // two reconnects: the broker restarts on the same address
				b.Close()
				waitFor(t, "link down", 10*time.Second, func() bool { return !link.Online() })
				if b, err = broker.Start(addr, nil); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "reconnect", 20*time.Second, func() bool { return link.Stats().Connects == uint64(i) && link.Online() })
			}
			if got := logs.count("broker connection is plaintext"); got != 3*tc.want {
				t.Errorf("%d plaintext warnings in 3 connects, want %d\n%s", got, 3*tc.want, logs.b.String())
			}
			if strings.Contains(logs.b.String(), "s3cret-password") {
				t.Error("the password reached the log")
			}
		})
	}
}
