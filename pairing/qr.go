package pairing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/fleet"
)

// Prefix starts every pairing QR's text.
const Prefix = "WLPAIR1:"

// MaxText bounds a pairing QR's text: what posd's scanner line and a QR at a readable
// module size carry (a version 25 QR at level M holds 1,370 bytes).
const MaxText = 1400

// Version is the payload's "v".
const Version = 1

// Payload is what a pairing QR carries. JSON keys are short: every byte is a module of
// the QR.
type Payload struct {
	V int `json:"v"`
	// Nonce is the QR's unique id (16 random bytes, base64url).
	Nonce string `json:"n"`
	// DeviceID is the terminal's id: its MQTT topics and its certificate's CN.
	DeviceID string `json:"d"`
	// Broker is the MQTT broker URL (ssl://host:8883).
	Broker string `json:"b"`
	// Groups are the fleet groups, in merge order.
	Groups []string `json:"g,omitempty"`
	// CAFingerprint is the SHA-256 of the CA certificate (DER) that signs the broker's,
	// the enrollment server's and the devices' certificates, base64url.
	CAFingerprint string `json:"ca"`
	// Secret is the one-time enrollment secret (16 random bytes, base64url).
	Secret string `json:"s"`
	// Expires is when the QR stops being valid, Unix seconds.
	Expires int64 `json:"e"`
	// EnrollURL is the enrollment server's base URL (https://host:port).
	EnrollURL string `json:"u"`
	// MerchantEMVQR is the shop's merchant.emv_qr, optional.
	MerchantEMVQR string `json:"m,omitempty"`
}

// ExpiresAt returns the expiry as a time.
func (p Payload) ExpiresAt() time.Time { return time.Unix(p.Expires, 0).UTC() }

// NewPayload fills a payload's random parts (nonce and secret) and expiry.
func NewPayload(p Payload, now time.Time, ttl time.Duration) (Payload, error) {
	p.V = Version
	n, err := random(16)
	if err != nil {
		return p, err
	}
	s, err := random(16)
	if err != nil {
		return p, err
	}
	p.Nonce, p.Secret = n, s
	p.Expires = now.Add(ttl).Unix()
	return p, p.Check()
}

func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("pairing: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Check reports what is wrong with a payload's fields.
func (p Payload) Check() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("pairing: "+f, a...)) }
	if p.V != Version {
		bad("payload version %d, this posd reads %d", p.V, Version)
	}
	if !validID(p.DeviceID) {
		bad("device id %q must be 1-64 characters of A-Z a-z 0-9 . _ -", p.DeviceID)
	}
	for _, g := range p.Groups {
		if !validID(g) {
			bad("group %q must be 1-64 characters of A-Z a-z 0-9 . _ -", g)
		}
	}
	if u, err := url.Parse(p.Broker); err != nil || u.Host == "" || (u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts") {
		bad("broker %q must be a TLS broker URL like ssl://host:8883 (the terminal connects with its certificate)", p.Broker)
	}
	if u, err := url.Parse(p.EnrollURL); err != nil || u.Host == "" || u.Scheme != "https" {
		bad("enrollment URL %q must be https://host[:port]", p.EnrollURL)
	}
	if b, err := base64.RawURLEncoding.DecodeString(p.CAFingerprint); err != nil || len(b) != sha256.Size {
		bad("CA fingerprint must be a SHA-256 (base64url)")
	}
	if b, err := base64.RawURLEncoding.DecodeString(p.Secret); err != nil || len(b) < 16 {
		bad("enrollment secret must be at least 16 random bytes (base64url)")
	}
	if b, err := base64.RawURLEncoding.DecodeString(p.Nonce); err != nil || len(b) < 16 {
		bad("nonce must be at least 16 random bytes (base64url)")
	}
	if p.Expires <= 0 {
		bad("no expiry")
	}
	if len(p.MerchantEMVQR) > 512 || strings.ContainsAny(p.MerchantEMVQR, "\r\n") {
		bad("merchant EMV QR longer than 512 characters or with a line break")
	}
	return errors.Join(errs...)
}

// Sign makes the pairing QR's text for p with the fleet's minisign key.
func Sign(key minisign.PrivateKey, p Payload) (string, error) {
	if err := p.Check(); err != nil {
		return "", err
	}
	js, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("pairing: %w", err)
	}
	signed := Prefix + base64.RawURLEncoding.EncodeToString(js)
	var s minisign.Signature
	// minisign's legacy (not prehashed) signature is plain ed25519 over the message:
	// the QR carries only those 64 bytes and the key id.
	if err := s.UnmarshalText(minisign.Sign(key, []byte(signed))); err != nil {
		return "", fmt.Errorf("pairing: sign: %w", err)
	}
	if s.Algorithm != minisign.EdDSA {
		return "", errors.New("pairing: sign: unexpected minisign algorithm")
	}
	text := signed + "." + fmt.Sprintf("%016X", key.ID()) + "." + base64.RawURLEncoding.EncodeToString(s.Signature[:])
	if len(text) > MaxText {
		return "", fmt.Errorf("pairing: the QR text is %d characters, more than %d: shorten the URLs, groups or merchant EMV QR", len(text), MaxText)
	}
	return text, nil
}

// IsPairing reports whether a scanned text is meant as a pairing QR (it may still be
// malformed): posd looks before it identifies a payment code.
func IsPairing(text string) bool { return strings.HasPrefix(strings.TrimSpace(text), Prefix) }

// QR is a parsed pairing QR: the payload, the signed bytes and the signature.
type QR struct {
	Payload Payload
	KeyID   uint64
	signed  []byte
	sig     []byte
}

// Parse reads a pairing QR's text strictly without checking its signature.
func Parse(text string) (QR, error) {
	text = strings.TrimSpace(text)
	if len(text) > MaxText {
		return QR{}, fmt.Errorf("%w: longer than %d characters", ErrFormat, MaxText)
	}
	if !strings.HasPrefix(text, Prefix) {
		return QR{}, fmt.Errorf("%w: it does not start with %s", ErrFormat, Prefix)
	}
	parts := strings.Split(text[len(Prefix):], ".")
	if len(parts) != 3 {
		return QR{}, fmt.Errorf("%w: want payload.keyid.signature", ErrFormat)
	}
	js, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return QR{}, fmt.Errorf("%w: payload: %w", ErrFormat, err)
	}
	if len(parts[1]) != 16 {
		return QR{}, fmt.Errorf("%w: key id is not 16 hex digits", ErrFormat)
	}
	kid, err := strconv.ParseUint(parts[1], 16, 64)
	if err != nil {
		return QR{}, fmt.Errorf("%w: key id: %w", ErrFormat, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return QR{}, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrFormat, ed25519.SignatureSize)
	}
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return QR{}, fmt.Errorf("%w: payload: %w", ErrFormat, err)
	}
	if dec.More() {
		return QR{}, fmt.Errorf("%w: data after the payload", ErrFormat)
	}
	if err := p.Check(); err != nil {
		return QR{}, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return QR{Payload: p, KeyID: kid, signed: []byte(text[:len(Prefix)+len(parts[0])]), sig: sig}, nil
}

// Verify checks q's signature against keys and its expiry against now. clockSynced
// says whether now can be trusted: a box without a synchronized clock leaves the
// expiry to the signer (it checks it again, authoritatively).
func (q QR) Verify(keys []minisign.PublicKey, now time.Time, clockSynced bool) error {
	if len(keys) == 0 {
		return ErrNoTrustedKey
	}
	for _, k := range keys {
		if k.ID() != q.KeyID {
			continue
		}
		raw, err := rawKey(k)
		if err != nil {
			return err
		}
		if !ed25519.Verify(raw, q.signed, q.sig) {
			return fmt.Errorf("%w (key %s)", ErrForged, fleet.KeyID(q.KeyID))
		}
		if clockSynced && !now.Before(q.Payload.ExpiresAt()) {
			return fmt.Errorf("%w at %s", ErrExpired, q.Payload.ExpiresAt().Format(time.RFC3339))
		}
		return nil
	}
	return fmt.Errorf("%w (key %s)", ErrUnknownKey, fleet.KeyID(q.KeyID))
}

// rawKey returns the ed25519 key of a minisign public key: its text is base64 of
// "Ed", the 8-byte key id and the 32-byte key.
func rawKey(k minisign.PublicKey) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(k.String())
	if err != nil || len(b) != 2+8+ed25519.PublicKeySize {
		return nil, errors.New("pairing: key: not a minisign ed25519 public key")
	}
	return ed25519.PublicKey(b[10:]), nil
}

// Redact returns what a log may show of a scanned pairing QR: its prefix, length and
// a short hash, never the secret.
func Redact(text string) string {
	h := sha256.Sum256([]byte(text))
	return fmt.Sprintf("%s…(%d chars, sha256 %s)", Prefix, len(text), hex.EncodeToString(h[:4]))
}

// Fingerprint is the SHA-256 of der, base64url: the form of Payload.CAFingerprint.
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// FingerprintHex is the SHA-256 of der as colon-less hex, for slips and logs.
func FingerprintHex(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
