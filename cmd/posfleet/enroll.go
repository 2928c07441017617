package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/pairing"
)

// cmdEnrollServer runs the reference enrollment signer: an HTTPS server answering EST's
// simpleenroll and cacerts (RFC 7030) with certs-only PKCS#7, as docs/fleet.md says.
func cmdEnrollServer(ctx context.Context, e env) error {
	fs := newFlags("enroll-server", e)
	var (
		listen   = fs.String("listen", ":8443", "address to serve HTTPS on")
		caFile   = fs.String("ca", "", "the fleet CA certificate (PEM)")
		caKey    = fs.String("ca-key", "", "the fleet CA's private key (PEM, mode 0600)")
		certFile = fs.String("cert", "", "this server's certificate (PEM), signed by the CA")
		keyFile  = fs.String("key", "", "this server's private key (PEM, mode 0600)")
		secrets  = fs.String("secrets", "", "the secrets file posfleet provision records one-time secrets in")
		validity = fs.Duration("validity", 365*24*time.Hour, "how long issued terminal certificates are valid")
		legacy   = fs.Bool("legacy-pem", false, "answer the PEM chain, not EST's certs-only PKCS#7, to a request with no Accept header (older posd)")
	)
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	if *caFile == "" || *caKey == "" || *certFile == "" || *keyFile == "" || *secrets == "" {
		return usageErr("-ca, -ca-key, -cert, -key and -secrets are required")
	}
	ca, err := pairing.ReadCert(*caFile)
	if err != nil {
		return err
	}
	key, err := pairing.ReadKey(*caKey)
	if err != nil {
		return err
	}
	if err := secretfile.Check(*keyFile); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	// The chain ends with the CA: terminals pin it by fingerprint and hold no CA yet.
	cert.Certificate = append(cert.Certificate, ca.Raw)
	log := slog.New(slog.NewTextHandler(e.stderr, nil)).With("component", "enroll-server")
	signer := &pairing.Signer{CA: ca, CAKey: key, Secrets: *secrets, Validity: *validity, Log: log, LegacyPEM: *legacy}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           signer,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("enrollment server listening", "addr", "https://"+ln.Addr().String()+pairing.EnrollPath,
		"cacerts", "https://"+ln.Addr().String()+pairing.CACertsPath, "ca_sha256", pairing.FingerprintHex(ca.Raw), "secrets", *secrets)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
