package pairing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// EnrollPath is the enrollment request's path under the QR's enrollment URL: the
// simpleenroll operation of EST (RFC 7030, section 4.2.1).
const EnrollPath = "/.well-known/est/simpleenroll"

// CACertsPath is where an EST server hands out its CA certificates (RFC 7030, section
// 4.1), a certs-only answer.
const CACertsPath = "/.well-known/est/cacerts"

// Media types of the enrollment step.
const (
	// CSRType is the request body: the PKCS#10 request, DER in base64 (RFC 7030).
	CSRType = "application/pkcs10"
	// CertsOnlyType is EST's answer (RFC 7030, section 4.2.3): base64 of a DER
	// PKCS#7/CMS certs-only structure (ParseCertsOnly).
	CertsOnlyType = "application/pkcs7-mime"
	// CertsOnlyContentType is the full Content-Type of a certs-only answer.
	CertsOnlyContentType = CertsOnlyType + "; smime-type=certs-only"
	// ChainType is the answer of older posfleet enrollment servers, still read and
	// still sent to a client that asks for it: the device certificate, then the CA
	// certificate, PEM.
	ChainType = "application/pem-certificate-chain"
	// acceptAnswer is the enrollment request's Accept: EST's answer, the PEM chain
	// acceptable.
	acceptAnswer = CertsOnlyType + ", " + ChainType + ";q=0.5"
)

// maxAnswer bounds the enrollment answer.
const maxAnswer = 64 << 10

// Enrolled is what a successful enrollment gives the device.
type Enrolled struct {
	Key  *ecdsa.PrivateKey // made on the device; never leaves it
	Cert *x509.Certificate // CN = device id, signed by the CA
	CA   *x509.Certificate // the pinned CA (its SHA-256 is the QR's fingerprint)
	// CertPEM, KeyPEM and CAPEM are the files to save.
	CertPEM, KeyPEM, CAPEM []byte
}

// Enroll makes a new ECDSA P-256 key pair, sends a certificate request for p's device
// id with p's one-time secret to p's enrollment URL, and returns the certificate. The
// server's certificate must chain to the CA whose SHA-256 is p.CAFingerprint (the CA
// certificate is in the server's chain); anything else is ErrPin before a byte of the
// request is sent. The answer is EST's certs-only PKCS#7 (RFC 7030, section 4.2.3) or
// the PEM chain of an older posfleet server, told apart by its Content-Type; the
// device certificate is the one of the answer for the new key, wherever it is.
func Enroll(ctx context.Context, p Payload, timeout time.Duration) (*Enrolled, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pairing: key pair: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: p.DeviceID}}, key)
	if err != nil {
		return nil, fmt.Errorf("pairing: certificate request: %w", err)
	}
	var pinned *x509.Certificate
	u, err := url.Parse(p.EnrollURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("pairing: enrollment URL %q is not https://host[:port]", p.EnrollURL)
	}
	host := u.Hostname()
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The device holds no CA yet: the QR pins one by fingerprint, and
		// VerifyConnection checks the server's chain against it.
		InsecureSkipVerify: true, //nolint:gosec // verified by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := pinnedChain(cs, host, p.CAFingerprint)
			if err != nil {
				return err
			}
			pinned = ca
			return nil
		},
	}
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig: tlsCfg, Proxy: nil, ForceAttemptHTTP2: false,
			TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	body := base64.StdEncoding.EncodeToString(csr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.EnrollURL, "/")+EnrollPath, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("pairing: enrollment request: %w", err)
	}
	req.Header.Set("Content-Type", CSRType)
	req.Header.Set("Content-Transfer-Encoding", "base64")
	req.Header.Set("Accept", acceptAnswer)
	req.SetBasicAuth(p.DeviceID, p.Secret)
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPin) {
			return nil, ErrPin
		}
		var pe pinError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s", ErrPin, pe.msg)
		}
		return nil, fmt.Errorf("pairing: enrollment server %s cannot be reached: %w", host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("pairing: the enrollment answer cannot be read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			if strings.Contains(msg, "already used") {
				return nil, fmt.Errorf("%w (signer: %s)", ErrReused, msg)
			}
			if strings.Contains(msg, "expired") {
				return nil, fmt.Errorf("%w (signer: %s)", ErrExpired, msg)
			}
			return nil, fmt.Errorf("%w: %s", ErrRefused, msg)
		}
		return nil, fmt.Errorf("pairing: enrollment answered %s: %s", resp.Status, msg)
	}
	if pinned == nil {
		return nil, ErrPin
	}
	if len(data) > maxAnswer {
		return nil, fmt.Errorf("pairing: the enrollment answer is larger than %d bytes", maxAnswer)
	}
	certs, err := answerCerts(resp.Header.Get("Content-Type"), data)
	if err != nil {
		return nil, err
	}
	cert, err := ours(certs, key)
	if err != nil {
		return nil, err
	}
	if err := checkIssued(cert, pinned, key, p.DeviceID); err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pairing: %w", err)
	}
	return &Enrolled{
		Key: key, Cert: cert, CA: pinned,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pinned.Raw}),
	}, nil
}

// pinError is a TLS verification failure against the pinned CA.
type pinError struct{ msg string }

func (e pinError) Error() string { return "pairing: " + e.msg }

// pinnedChain finds the certificate of the server's chain whose SHA-256 is fp and
// checks that the server's certificate chains to it for the server's name.
func pinnedChain(cs tls.ConnectionState, host, fp string) (*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, pinError{"the enrollment server sent no certificate"}
	}
	var ca *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if Fingerprint(c.Raw) == fp {
			ca = c
		}
	}
	if ca == nil {
		return nil, pinError{"no certificate of the enrollment server's chain has the CA fingerprint of the pairing QR (a different CA, or a man in the middle)"}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
		return nil, pinError{"the enrollment server's certificate does not chain to the pinned CA for " + host + ": " + err.Error()}
	}
	return ca, nil
}

// answerCerts reads the certificates of an enrollment answer by its Content-Type: EST's
// base64 certs-only PKCS#7 (application/pkcs7-mime, with any parameters; an
// smime-type, if given, must be certs-only) or an older posfleet server's PEM chain.
func answerCerts(contentType string, data []byte) ([]*x509.Certificate, error) {
	if contentType == "" {
		return nil, fmt.Errorf("pairing: the enrollment answer has no Content-Type (want %s)", CertsOnlyContentType)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("pairing: the enrollment answer's Content-Type %.80q does not parse: %w", contentType, err)
	}
	switch mt {
	case CertsOnlyType:
		if st, ok := params["smime-type"]; ok && !strings.EqualFold(st, "certs-only") {
			return nil, fmt.Errorf("pairing: the enrollment answer is %s with smime-type %.40q, not certs-only", CertsOnlyType, st)
		}
		return ParseCertsOnly(data) // its errors say what is wrong (ErrCertsOnly)
	case ChainType:
		return pemCerts(data)
	}
	return nil, fmt.Errorf("pairing: the enrollment answer is %.80q, not %s (RFC 7030) or %s", mt, CertsOnlyType, ChainType)
}

// pemCerts reads a PEM certificate chain: CERTIFICATE blocks only, at least one.
func pemCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || b.Type != "CERTIFICATE" || len(certs) == maxBagCerts {
			return nil, errors.New("pairing: the enrollment answer is not a PEM certificate chain")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pairing: the enrollment answer holds a certificate that does not parse: %w", err)
		}
		certs = append(certs, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(certs) == 0 {
		return nil, errors.New("pairing: the enrollment answer is not a PEM certificate chain")
	}
	return certs, nil
}

// ours picks the device certificate from the answer's certificates: the one for our
// key. A certs-only bag is a SET, so its order says nothing (the CA may come first).
func ours(certs []*x509.Certificate, key *ecdsa.PrivateKey) (*x509.Certificate, error) {
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("pairing: the enrollment answer holds no certificate for this terminal's key (%d certificates)", len(certs))
}

// checkIssued checks the issued certificate: signed by the pinned CA, for our key and
// device id, usable for TLS client authentication.
func checkIssued(cert, ca *x509.Certificate, key *ecdsa.PrivateKey, deviceID string) error {
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("pairing: the issued certificate is not signed by the pinned CA: %w", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("pairing: the issued certificate is not for this terminal's key")
	}
	if cert.Subject.CommonName != deviceID {
		return fmt.Errorf("pairing: the issued certificate names %q, not %q", cert.Subject.CommonName, deviceID)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("pairing: the issued certificate does not verify for client authentication: %w", err)
	}
	return nil
}
