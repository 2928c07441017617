package gateway

import (
	"path/filepath"
	"strings"
	"testing"
)

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
