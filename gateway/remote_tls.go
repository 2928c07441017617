package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/walletless/walletless/internal/secretfile"
	wsync "github.com/walletless/walletless/sync"
)

// ServerTLSConfig returns the TLS configuration of a ledger Server: the certificate
// pair certFile/keyFile (PEM) and, when clientCAFile is set, mutual TLS: every client
// must present a certificate signed by a CA of that bundle. TLS 1.2 is the minimum;
// TLS 1.3 is chosen whenever the client offers it. Both certFile and keyFile are
// required; every file is read and checked now, and an error names the file.
func ServerTLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%w: the ledger server's certificate and key must be given together", ErrBadTLSFiles)
	}
	if err := checkPEM(certFile, "CERTIFICATE"); err != nil {
		return nil, err
	}
	if err := checkPEM(keyFile, "PRIVATE KEY"); err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: ledger server certificate %s with key %s: %w", ErrBadTLSFiles, certFile, keyFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if clientCAFile != "" {
		pool, err := readCAs(clientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// ClientTLSConfig returns the TLS configuration of a Remote: the server is verified
// against the CA bundle caFile (PEM; empty: the system's roots), and certFile/keyFile
// is the client certificate pair for a server that requires mutual TLS (both or
// neither). It returns nil when every name is empty (the defaults of an https URL).
// Every file is read and checked now, and an error names the file.
func ClientTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: the ledger client certificate and key must be given together", ErrBadTLSFiles)
	}
	if caFile != "" {
		if _, err := readCAs(caFile); err != nil {
			return nil, err
		}
	}
	if certFile != "" {
		if err := checkPEM(certFile, "CERTIFICATE"); err != nil {
			return nil, err
		}
		if err := checkPEM(keyFile, "PRIVATE KEY"); err != nil {
			return nil, err
		}
	}
	c, err := wsync.TLSConfig(nil, caFile, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: ledger client (CA %q, certificate %q, key %q): %w", ErrBadTLSFiles, caFile, certFile, keyFile, err)
	}
	return c, nil
}

// readCAs reads a PEM bundle of CA certificates; each one must parse.
func readCAs(path string) (*x509.CertPool, error) {
	if err := checkPEM(path, "CERTIFICATE"); err != nil {
		return nil, err
	}
	raw, _ := os.ReadFile(path) // checkPEM read it
	pool := x509.NewCertPool()
	for rest := raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadTLSFiles, path, err)
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// checkPEM reads path and checks that it holds at least one PEM block whose type
// ends with typ ("CERTIFICATE"; "PRIVATE KEY" also matches "EC PRIVATE KEY" and
// "RSA PRIVATE KEY").
//
// A private key its group or others can read is refused (secretfile.ErrTooOpen, with
// the chmod to run), as ssh refuses such keys.
func checkPEM(path, typ string) error {
	if typ == "PRIVATE KEY" {
		if err := secretfile.Check(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrBadTLSFiles, err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadTLSFiles, err)
	}
	for rest := raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return fmt.Errorf("%w: %s holds no PEM %s", ErrBadTLSFiles, path, typ)
		}
		if len(b.Type) >= len(typ) && b.Type[len(b.Type)-len(typ):] == typ {
			return nil
		}
	}
}

// isTLSFailure reports whether err comes from a failed TLS handshake: a certificate
// that does not verify (either side) or a peer that does not speak TLS.
func isTLSFailure(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &record), errors.As(err, &unknown),
		errors.As(err, &hostname), errors.As(err, &invalid):
		return true
	case errors.As(err, &op) && op.Op == "remote error": // a TLS alert from the server
		return true
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http turns the RecordHeaderError of a plain server into this
		// unwrapped error.
		return true
	}
	return false
}
