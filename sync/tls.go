package sync

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/walletless/walletless/internal/secretfile"
)

// TLSConfig returns base (cloned; nil for a new config) with the CA bundle at caFile
// as its roots and the client certificate pair certFile/keyFile for mutual TLS. Empty
// names are skipped; when base is nil and every name is empty it returns nil (plain
// TCP). The minimum version is TLS 1.2. A key file its group or others may read is
// refused (secretfile.ErrTooOpen, with the chmod to run).
func TLSConfig(base *tls.Config, caFile, certFile, keyFile string) (*tls.Config, error) {
	if base == nil && caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	var c *tls.Config
	if base != nil {
		c = base.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("sync: CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sync: CA bundle %s holds no PEM certificate", caFile)
		}
		c.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("sync: client certificate and key must be given together")
	}
	if certFile != "" {
		// The key is a secret: refused when its group or others can read it, as ssh does.
		if err := secretfile.Check(keyFile); err != nil {
			return nil, fmt.Errorf("sync: client key: %w", err)
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("sync: client certificate: %w", err)
		}
		c.Certificates = append(c.Certificates, pair)
	}
	return c, nil
}
