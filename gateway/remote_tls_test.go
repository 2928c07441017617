package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/testpki"
	wsync "github.com/walletless/walletless/sync"
)

// syncLog collects a server's log lines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count is how many log lines contain s.
func (l *syncLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// tlsLedger is a ledger server on loopback speaking TLS with a certificate of ca,
// requiring client certificates of that CA when mutual is set; logs collects its
// log.
func tlsLedger(t *testing.T, ca *testpki.CA, token string, mutual bool, logs *syncLog) *ledgerServer {
	t.Helper()
	cert, key := ca.Issue(t, "ledger-server", true)
	clientCA := ""
	if mutual {
		clientCA = ca.File
	}
	tc, err := ServerTLSConfig(cert, key, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	log := slog.New(slog.DiscardHandler)
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	return serveLedgerTLS(t, l, "127.0.0.1:0", token, tc, log)
}

func tlsRemote(t *testing.T, url, token, caFile, certFile, keyFile string) *Remote {
	t.Helper()
	tc, err := ClientTLSConfig(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRemote(RemoteConfig{URL: url, Token: token, Timeout: 5 * time.Second, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// applyOne sends one fresh sale under key and reports the error.
func applyOne(t *testing.T, r *Remote, key string) error {
	t.Helper()
	key = strings.ReplaceAll(key, " ", "-")
	msgs := messagesOf(t, []kindStep{{name: key, device: "d1", kind: wsync.KindPayment, msg: sale("d1", key, 100, "KRW", t0)}})
	got, err := r.Apply(context.Background(), msgs)
	if err == nil && (len(got) != 1 || !got[0].Fresh || got[0].Result.Key != key) {
		t.Errorf("%s: answered %+v", key, got)
	}
	return err
}

func ledgerKeys(t *testing.T, l *Ledger) []string {
	t.Helper()
	var keys []string
	for _, e := range entriesOf(t, l.ForEach) {
		keys = append(keys, e.Key)
	}
	return keys
}

// TestRemoteTLS: over TLS an apply works with the CA, is refused with a
// verification error (and writes nothing) without it or with another CA, still
// needs the token, and a plain-HTTP client or server on either side is refused.
func TestRemoteTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, dir, "ledger")
	rogue := testpki.New(t, dir, "rogue")
	srv := tlsLedger(t, ca, testToken, false, nil)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("server URL %s", srv.url)
	}

	if err := applyOne(t, tlsRemote(t, srv.url, testToken, ca.File, "", ""), "k-ok"); err != nil {
		t.Fatalf("apply over TLS: %v", err)
	}
	// TLS 1.3 is what a current client gets.
	pool, _ := readCAs(ca.File)
	conn, err := tls.Dial("tcp", srv.addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(v))
	}
	conn.Close()
	// A client that only speaks TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", srv.addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 client was accepted")
	}

	for _, c := range []struct {
		name, caFile string
	}{
		{"system roots", ""},
		{"another CA", rogue.File},
	} {
		err := applyOne(t, tlsRemote(t, srv.url, testToken, c.caFile, "", ""), "k-"+c.name)
		var verify *tls.CertificateVerificationError
		if !errors.Is(err, ErrLedgerTLS) || !errors.As(err, &verify) {
			t.Errorf("%s: %v, want ErrLedgerTLS with a certificate verification error", c.name, err)
		}
		if errors.Is(err, ErrLedgerUnreachable) {
			t.Errorf("%s: %v is also ErrLedgerUnreachable", c.name, err)
		}
	}
	// The token is still checked over TLS.
	for _, tok := range []string{"", "wrong-token-of-some-length"} {
		if err := applyOne(t, tlsRemote(t, srv.url, tok, ca.File, "", ""), "k-token"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q over TLS: %v, want ErrUnauthorized", tok, err)
		}
	}
	// Plain HTTP against the TLS server: refused by the server.
	plain := newRemote(t, "http://"+srv.addr, testToken)
	if err := applyOne(t, plain, "k-plain"); !errors.Is(err, ErrLedgerRefused) {
		t.Errorf("plain HTTP to a TLS server: %v, want ErrLedgerRefused", err)
	}
	if got := ledgerKeys(t, srv.ledger); len(got) != 1 || got[0] != "k-ok" {
		t.Errorf("ledger holds %q, want only k-ok", got)
	}

	// TLS against a plain HTTP server: a handshake failure, not "unreachable".
	plainSrv := startLedgerServer(t, "127.0.0.1:0", testToken)
	err = applyOne(t, tlsRemote(t, "https://"+plainSrv.addr, testToken, ca.File, "", ""), "k-mismatch")
	if !errors.Is(err, ErrLedgerTLS) {
		t.Errorf("https to a plain server: %v, want ErrLedgerTLS", err)
	}
	if n := len(ledgerKeys(t, plainSrv.ledger)); n != 0 {
		t.Errorf("plain server holds %d entries", n)
	}
}

// refusedHandshake checks that err is a refused call and that the server logged a
// failed TLS handshake for it. With TLS 1.3 the server checks the client's
// certificate after the client has finished its side of the handshake: the client
// sees the server's alert (ErrLedgerTLS) or, when the server's close wins the race,
// a reset connection (ErrLedgerUnreachable).
func refusedHandshake(t *testing.T, what string, logs *syncLog, before int, err error) {
	t.Helper()
	if !errors.Is(err, ErrLedgerTLS) && !errors.Is(err, ErrLedgerUnreachable) {
		t.Errorf("%s: %v, want ErrLedgerTLS (or ErrLedgerUnreachable)", what, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.count("TLS handshake error") <= before {
		if time.Now().After(deadline) {
			t.Errorf("%s: the server logged no failed TLS handshake", what)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRemoteMutualTLS: with client certificates required, a client without one, with
// one from another CA, or with a server-only certificate is refused in the TLS
// handshake and writes nothing; a right certificate with a wrong token is still
// refused; a server with mutual TLS and no token accepts a right certificate alone.
func TestRemoteMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, dir, "ledger")
	rogue := testpki.New(t, dir, "rogue")
	clientCert, clientKey := ca.Issue(t, "posgw-front", false)
	rogueCert, rogueKey := rogue.Issue(t, "posgw-front", false)
	serverOnlyCert, serverOnlyKey := ca.Issue(t, "not-a-client", true)
	logs := &syncLog{}
	srv := tlsLedger(t, ca, testToken, true, logs)

	if err := applyOne(t, tlsRemote(t, srv.url, testToken, ca.File, clientCert, clientKey), "k-ok"); err != nil {
		t.Fatalf("apply with a client certificate: %v", err)
	}
	for _, c := range []struct {
		name, cert, key string
	}{
		{"no certificate", "", ""},
		{"another CA", rogueCert, rogueKey},
		{"server certificate", serverOnlyCert, serverOnlyKey},
	} {
		r := tlsRemote(t, srv.url, testToken, ca.File, c.cert, c.key)
		n := logs.count("TLS handshake error")
		refusedHandshake(t, c.name+": apply", logs, n, applyOne(t, r, "k-"+c.name))
		n = logs.count("TLS handshake error")
		refusedHandshake(t, c.name+": ping", logs, n, r.Ping(context.Background()))
		n = logs.count("TLS handshake error")
		refusedHandshake(t, c.name+": listing", logs, n, r.ForEach(func(Entry) error { return nil }))
	}
	if err := applyOne(t, tlsRemote(t, srv.url, "wrong-token-of-some-length", ca.File, clientCert, clientKey), "k-token"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("right certificate, wrong token: %v, want ErrUnauthorized", err)
	}
	if got := ledgerKeys(t, srv.ledger); len(got) != 1 || got[0] != "k-ok" {
		t.Errorf("ledger holds %q, want only k-ok", got)
	}

	noTokenLogs := &syncLog{}
	noToken := tlsLedger(t, ca, "", true, noTokenLogs)
	if err := applyOne(t, tlsRemote(t, noToken.url, "", ca.File, clientCert, clientKey), "k-cert-only"); err != nil {
		t.Errorf("mutual TLS without a token: %v", err)
	}
	refusedHandshake(t, "mutual TLS without a token, another CA", noTokenLogs, 0,
		applyOne(t, tlsRemote(t, noToken.url, "", ca.File, rogueCert, rogueKey), "k-rogue"))
	if got := ledgerKeys(t, noToken.ledger); len(got) != 1 || got[0] != "k-cert-only" {
		t.Errorf("ledger holds %q, want only k-cert-only", got)
	}
}

// TestTLSConfigFiles: missing, unreadable, mismatched or non-PEM files and a
// certificate without its key fail at once, naming the file.
func TestTLSConfigFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, dir, "ledger")
	other := testpki.New(t, dir, "other")
	cert, key := ca.Issue(t, "ledger-server", true)
	_, otherKey := other.Issue(t, "ledger-server", true)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600)
	badDER := filepath.Join(dir, "bad-der.pem")
	testpki.WritePEM(t, badDER, "CERTIFICATE", []byte("not DER"))
	missing := filepath.Join(dir, "missing.pem")
	unreadable := filepath.Join(dir, "unreadable.pem")
	os.WriteFile(unreadable, []byte("x"), 0o600)
	os.Chmod(unreadable, 0)
	if _, err := os.ReadFile(unreadable); err == nil {
		unreadable = missing // running as root: every file is readable
	}

	if _, err := ServerTLSConfig(cert, key, ca.File); err != nil {
		t.Fatalf("good server files: %v", err)
	}
	if c, err := ClientTLSConfig("", "", ""); c != nil || err != nil {
		t.Errorf("no client files: %v, %v; want nil, nil", c, err)
	}
	for _, c := range []struct {
		name    string
		fn      func() error
		wantIn  string
		wantErr error
	}{
		{"server cert without key", func() error { _, err := ServerTLSConfig(cert, "", ""); return err }, "together", ErrBadTLSFiles},
		{"server key without cert", func() error { _, err := ServerTLSConfig("", key, ""); return err }, "together", ErrBadTLSFiles},
		{"server cert missing", func() error { _, err := ServerTLSConfig(missing, key, ""); return err }, missing, os.ErrNotExist},
		{"server cert unreadable", func() error { _, err := ServerTLSConfig(unreadable, key, ""); return err }, unreadable, ErrBadTLSFiles},
		{"server cert not PEM", func() error { _, err := ServerTLSConfig(garbage, key, ""); return err }, garbage, ErrBadTLSFiles},
		{"server key is a certificate", func() error { _, err := ServerTLSConfig(cert, cert, ""); return err }, cert, ErrBadTLSFiles},
		{"server key of another certificate", func() error { _, err := ServerTLSConfig(cert, otherKey, ""); return err }, otherKey, ErrBadTLSFiles},
		{"client CA not PEM", func() error { _, err := ServerTLSConfig(cert, key, garbage); return err }, garbage, ErrBadTLSFiles},
		{"client CA bad DER", func() error { _, err := ServerTLSConfig(cert, key, badDER); return err }, badDER, ErrBadTLSFiles},
		{"client CA is a key", func() error { _, err := ServerTLSConfig(cert, key, key); return err }, key, ErrBadTLSFiles},
		{"client cert without key", func() error { _, err := ClientTLSConfig(ca.File, cert, ""); return err }, "together", ErrBadTLSFiles},
		{"client key without cert", func() error { _, err := ClientTLSConfig(ca.File, "", key); return err }, "together", ErrBadTLSFiles},
		{"CA missing", func() error { _, err := ClientTLSConfig(missing, "", ""); return err }, missing, os.ErrNotExist},
		{"CA not PEM", func() error { _, err := ClientTLSConfig(garbage, "", ""); return err }, garbage, ErrBadTLSFiles},
		{"client key mismatched", func() error { _, err := ClientTLSConfig(ca.File, cert, otherKey); return err }, otherKey, ErrBadTLSFiles},
		{"client cert not PEM", func() error { _, err := ClientTLSConfig("", garbage, key); return err }, garbage, ErrBadTLSFiles},
	} {
		err := c.fn()
		if err == nil || !strings.Contains(err.Error(), c.wantIn) || !errors.Is(err, c.wantErr) || !strings.HasPrefix(err.Error(), "gateway: ") {
			t.Errorf("%s: %v, want a gateway error with %q that is %v", c.name, err, c.wantIn, c.wantErr)
		}
	}

	// TLS settings with an http URL would silently not be used.
	tc, err := ClientTLSConfig(ca.File, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRemote(RemoteConfig{URL: "http://127.0.0.1:7601", TLS: tc}); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("TLS with an http URL: %v", err)
	}
	if _, err := NewServer(ServerConfig{Local: &Local{}, TLS: &tls.Config{}}); err == nil {
		t.Error("a TLS server without a certificate was accepted")
	}
}
