package pairing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
)

// Record is the signer's record of one pairing QR's one-time secret: the secret
// itself is kept only as its SHA-256, so the secrets file cannot pair a box.
type Record struct {
	Nonce        string    `json:"nonce"`
	DeviceID     string    `json:"device_id"`
	SecretSHA256 string    `json:"secret_sha256"` // base64url
	Expires      time.Time `json:"expires"`
	UsedAt       time.Time `json:"used_at,omitzero"`
}

// RecordFor returns the signer's record of p.
func RecordFor(p Payload) Record {
	h := sha256.Sum256([]byte(p.Secret))
	return Record{Nonce: p.Nonce, DeviceID: p.DeviceID, SecretSHA256: base64.RawURLEncoding.EncodeToString(h[:]), Expires: p.ExpiresAt()}
}

// secretsFile is the signer's secrets file.
type secretsFile struct {
	V       int      `json:"v"`
	Secrets []Record `json:"secrets"`
}

func readSecrets(path string) (secretsFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return secretsFile{V: Version}, nil
	}
	if err != nil {
		return secretsFile{}, fmt.Errorf("pairing: secrets: %w", err)
	}
	var f secretsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.V != Version {
		return secretsFile{}, fmt.Errorf("pairing: secrets file %s is not version %d JSON: %v", path, Version, err)
	}
	return f, nil
}

func writeSecrets(path string, f secretsFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	// secretfile.Write: temporary file, fsync, rename, fsync of the directory.
	if err := secretfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("pairing: secrets: %w", err)
	}
	return nil
}

// AddRecord adds r to the signer's secrets file at path (made at mode 0600 if
// missing). A nonce already in the file is refused.
func AddRecord(path string, r Record) error {
	f, err := readSecrets(path)
	if err != nil {
		return err
	}
	for _, o := range f.Secrets {
		if o.Nonce == r.Nonce {
			return fmt.Errorf("pairing: secrets: nonce %s is already recorded", r.Nonce)
		}
	}
	f.Secrets = append(f.Secrets, r)
	return writeSecrets(path, f)
}

// Signer is the core of the reference enrollment server: it signs a device's
// certificate request with the fleet CA only for a valid, unexpired, unused one-time
// secret bound to that device id, and marks the secret used durably before it answers.
type Signer struct {
	CA       *x509.Certificate
	CAKey    crypto.Signer
	Secrets  string        // the secrets file (posfleet provision -secrets adds to it)
	Validity time.Duration // of issued certificates; 0: a year
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now
	// LegacyPEM answers the PEM chain to a request without an Accept header: the
	// older posd that reads only PEM sends none (an EST client gets certs-only by
	// sending Accept: application/pkcs7-mime).
	LegacyPEM bool

	mu stdsync.Mutex // serializes the secrets file's read-check-write
}

// SignError is a refusal with the HTTP status the enrollment answers with.
type SignError struct {
	Status int
	Msg    string
}

func (e *SignError) Error() string { return "pairing: " + e.Msg }

// Sign checks secret for deviceID, marks it used, and returns the device's
// certificate (DER) for the request csrDER.
func (s *Signer) Sign(deviceID, secret string, csrDER []byte) ([]byte, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, &SignError{http.StatusBadRequest, "the certificate request does not parse"}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, &SignError{http.StatusBadRequest, "the certificate request's signature does not verify"}
	}
	if csr.Subject.CommonName != deviceID {
		return nil, &SignError{http.StatusBadRequest, fmt.Sprintf("the certificate request names %q, not the device %q", csr.Subject.CommonName, deviceID)}
	}
	if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return nil, &SignError{http.StatusBadRequest, "the certificate request's key is not ECDSA P-256"}
	}
	h := sha256.Sum256([]byte(secret))
	got := base64.RawURLEncoding.EncodeToString(h[:])

	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := readSecrets(s.Secrets)
	if err != nil {
		return nil, err
	}
	idx := -1
	for i, r := range f.Secrets {
		if r.DeviceID == deviceID && subtle.ConstantTimeCompare([]byte(r.SecretSHA256), []byte(got)) == 1 {
			idx = i
		}
	}
	if idx < 0 {
		return nil, &SignError{http.StatusUnauthorized, "no enrollment secret matches this device (a wrong secret, or a QR made for another device or fleet)"}
	}
	r := &f.Secrets[idx]
	if !r.UsedAt.IsZero() {
		return nil, &SignError{http.StatusForbidden, fmt.Sprintf("pairing QR %s already used at %s", r.Nonce, r.UsedAt.Format(time.RFC3339))}
	}
	if !now.Before(r.Expires) {
		return nil, &SignError{http.StatusForbidden, fmt.Sprintf("pairing QR %s expired at %s", r.Nonce, r.Expires.Format(time.RFC3339))}
	}
	r.UsedAt = now.UTC()
	// Durably used before the certificate leaves: a crash after this loses a QR,
	// never lets it pair twice.
	if err := writeSecrets(s.Secrets, f); err != nil {
		return nil, err
	}
	validity := s.Validity
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pairing: serial: %w", err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(s.CA.NotAfter) {
		notAfter = s.CA.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: deviceID},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CA, csr.PublicKey, s.CAKey)
	if err != nil {
		return nil, fmt.Errorf("pairing: sign: %w", err)
	}
	s.log().Info("device enrolled", "device", deviceID, "nonce", r.Nonce, "serial", serial.Text(16), "not_after", notAfter.UTC())
	return der, nil
}

func (s *Signer) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// ServeHTTP is the reference EST server (RFC 7030), two of its operations:
//
//   - GET CACertsPath, without authentication: the CA certificate, certs-only (section
//     4.1);
//   - POST EnrollPath (simpleenroll, section 4.2): HTTP Basic authentication with the
//     device id and the one-time secret, a base64 DER PKCS#10 body; the answer is the
//     issued certificate, certs-only (CertsOnlyContentType, base64, section 4.2.3), or
//     the device and CA certificates PEM (ChainType) to a client whose Accept prefers
//     that type explicitly.
//
// Other EST operations (simplereenroll, csrattrs, serverkeygen, fullcmc) and CA
// labels answer 404.
func (s *Signer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		s.log().Warn("enrollment refused", "status", status, "reason", msg, "remote", r.RemoteAddr)
		http.Error(w, msg, status)
	}
	switch r.URL.Path {
	case EnrollPath:
	case CACertsPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "GET the CA certificates", http.StatusMethodNotAllowed)
			return
		}
		b, err := EncodeCertsOnly(s.CA)
		if err != nil {
			s.log().Error("cacerts failed", "err", err)
			http.Error(w, "the signer failed; try again", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", CertsOnlyContentType)
		w.Header().Set("Content-Transfer-Encoding", "base64")
		_, _ = w.Write(b)
		return
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "POST a certificate request")
		return
	}
	device, secret, ok := r.BasicAuth()
	if !ok || !validID(device) || secret == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="walletless enrollment"`)
		fail(http.StatusUnauthorized, "the device id and one-time secret are missing (HTTP Basic authentication)")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<10+1))
	if err != nil || len(body) > 16<<10 {
		fail(http.StatusBadRequest, "the certificate request is missing or larger than 16 KiB")
		return
	}
	csr, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
	if err != nil {
		fail(http.StatusBadRequest, "the body is not a base64 DER certificate request (application/pkcs10)")
		return
	}
	der, err := s.Sign(device, secret, csr)
	if err != nil {
		var se *SignError
		if errors.As(err, &se) {
			fail(se.Status, se.Msg)
			return
		}
		s.log().Error("enrollment failed", "device", device, "err", err)
		http.Error(w, "the signer failed; try again", http.StatusInternalServerError)
		return
	}
	if accept := r.Header.Values("Accept"); wantsPEM(accept) || s.LegacyPEM && len(accept) == 0 {
		s.log().Info("enrollment answered", "device", device, "content_type", ChainType)
		w.Header().Set("Content-Type", ChainType)
		_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: s.CA.Raw})
		return
	}
	cert, err := x509.ParseCertificate(der)
	var b []byte
	if err == nil {
		b, err = EncodeCertsOnly(cert)
	}
	if err != nil {
		// Not expected: the certificate was just made. The secret is used: the QR
		// is lost, as with a crash after marking it.
		s.log().Error("enrollment failed", "device", device, "err", err)
		http.Error(w, "the signer failed", http.StatusInternalServerError)
		return
	}
	s.log().Info("enrollment answered", "device", device, "content_type", CertsOnlyContentType)
	w.Header().Set("Content-Type", CertsOnlyContentType)
	w.Header().Set("Content-Transfer-Encoding", "base64")
	_, _ = w.Write(b)
}

// wantsPEM reports whether an Accept header prefers the PEM chain explicitly: it
// names ChainType with a quality above that of application/pkcs7-mime (absent: 0).
// Wildcards ask for nothing explicitly: such a client gets EST's answer.
func wantsPEM(accept []string) bool {
	qPEM, qP7 := 0.0, 0.0
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || f < 0 || f > 1 {
					continue
				}
				q = f
			}
			switch mt {
			case ChainType:
				qPEM = max(qPEM, q)
			case CertsOnlyType:
				qP7 = max(qP7, q)
			}
		}
	}
	return qPEM > 0 && qPEM > qP7
}
