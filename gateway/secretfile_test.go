package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/internal/testpki"
)

// TestSecretFilesReadableByOthersAreRefused: posgw's ledger token and its TLS keys
// (server and client) are refused at mode 0644 with the chmod to run, and accepted at
// 0600.
func TestSecretFilesReadableByOthersAreRefused(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "ledger.token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef-open-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testpki.New(t, dir, "ledger")
	cert, key := ca.Issue(t, "ledger-server", true)
	ccert, ckey := ca.Issue(t, "ledger-client", false)
	for _, f := range []string{key, ckey} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what, file string, err error) {
		t.Helper()
		if !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+file) {
			t.Errorf("%s at 0644: %v", what, err)
		}
	}
	_, err := ReadToken(tok)
	check("token", tok, err)
	_, err = ServerTLSConfig(cert, key, "")
	check("server key", key, err)
	if !errors.Is(err, ErrBadTLSFiles) {
		t.Errorf("server key error is not ErrBadTLSFiles: %v", err)
	}
	_, err = ClientTLSConfig(ca.File, ccert, ckey)
	check("client key", ckey, err)

	for _, f := range []string{tok, key, ckey} {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadToken(tok); err != nil {
		t.Errorf("token at 0600: %v", err)
	}
	if _, err := ServerTLSConfig(cert, key, ""); err != nil {
		t.Errorf("server key at 0600: %v", err)
	}
	if _, err := ClientTLSConfig(ca.File, ccert, ckey); err != nil {
		t.Errorf("client key at 0600: %v", err)
	}
}

// TestTLSFilesNeedATLSBrokerURL: posgw's -ca/-cert/-key with a tcp:// broker would
// leave TLS silently off; New refuses it.
func TestTLSFilesNeedATLSBrokerURL(t *testing.T) {
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = New(Config{BrokerURL: "tcp://127.0.0.1:1883", Ledger: l, CAFile: "ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "CA file") || !strings.Contains(err.Error(), "ssl://") {
		t.Fatalf("CA file with tcp://: %v", err)
	}
}
