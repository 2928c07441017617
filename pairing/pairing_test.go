package pairing

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
)

func keys(t *testing.T) (minisign.PublicKey, minisign.PrivateKey) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func payload(t *testing.T, caFP string, now time.Time) Payload {
	t.Helper()
	if caFP == "" {
		caFP = Fingerprint([]byte("ca"))
	}
	p, err := NewPayload(Payload{DeviceID: "shop-7", Broker: "ssl://broker.example:8883", Groups: []string{"eu", "bakeries"},
		CAFingerprint: caFP, EnrollURL: "https://enroll.example:8443"}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignParseVerify(t *testing.T) {
	pub, priv := keys(t)
	otherPub, otherPriv := keys(t)
	now := time.Now()
	p := payload(t, "", now)
	text, err := Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pairing QR text: %d characters", len(text))
	if !IsPairing(text) || strings.Contains(Redact(text), p.Secret) {
		t.Fatal("redacted text shows the secret or IsPairing fails")
	}
	q, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if q.Payload.DeviceID != "shop-7" || q.Payload.Secret != p.Secret {
		t.Fatalf("payload %+v", q.Payload)
	}
	if err := q.Verify([]minisign.PublicKey{otherPub, pub}, now, true); err != nil {
		t.Fatalf("valid QR: %v", err)
	}
	// Signed by a key the terminal does not trust.
	if err := q.Verify([]minisign.PublicKey{otherPub}, now, true); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if err := q.Verify(nil, now, true); !errors.Is(err, ErrNoTrustedKey) {
		t.Fatalf("no key: %v", err)
	}
	// Edited payload: another device id, same signature.
	parts := strings.Split(strings.TrimPrefix(text, Prefix), ".")
	p2 := p
	p2.DeviceID = "shop-8"
	forgedText, _ := Sign(priv, p2)
	forged := Prefix + strings.Split(strings.TrimPrefix(forgedText, Prefix), ".")[0] + "." + parts[1] + "." + parts[2]
	fq, err := Parse(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := fq.Verify([]minisign.PublicKey{pub}, now, true); !errors.Is(err, ErrForged) {
		t.Fatalf("edited payload: %v", err)
	}
	// A signature by another key under the trusted key's id.
	other, _ := Sign(otherPriv, p)
	op := strings.Split(strings.TrimPrefix(other, Prefix), ".")
	swapped := Prefix + parts[0] + "." + parts[1] + "." + op[2]
	sq, _ := Parse(swapped)
	if err := sq.Verify([]minisign.PublicKey{pub}, now, true); !errors.Is(err, ErrForged) {
		t.Fatalf("foreign signature: %v", err)
	}
	// Expired: refused when the clock is synced, left to the signer when not.
	late := now.Add(25 * time.Hour)
	if err := q.Verify([]minisign.PublicKey{pub}, late, true); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := q.Verify([]minisign.PublicKey{pub}, late, false); err != nil {
		t.Fatalf("unsynced clock: %v", err)
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	_, priv := keys(t)
	text, err := Sign(priv, payload(t, "", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"no prefix":     strings.TrimPrefix(text, Prefix),
		"two parts":     text[:strings.LastIndex(text, ".")],
		"short sig":     text[:len(text)-4],
		"bad key id":    strings.Replace(text, ".", ".zz", 1),
		"long":          text + strings.Repeat("A", MaxText),
		"extra field":   Prefix + base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"x":1}`)) + ".0000000000000000." + strings.Repeat("A", 86),
		"payment code":  "281234567890123456",
		"trailing data": Prefix + base64.RawURLEncoding.EncodeToString([]byte(`{"v":1}{}`)) + ".0000000000000000." + strings.Repeat("A", 86),
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParsePairing(f *testing.F) {
	_, priv, _ := minisign.GenerateKey(nil)
	p, _ := NewPayload(Payload{DeviceID: "d", Broker: "ssl://b:8883", CAFingerprint: Fingerprint(nil), EnrollURL: "https://e"}, time.Now(), time.Hour)
	text, _ := Sign(priv, p)
	f.Add(text)
	f.Add(Prefix)
	f.Add(Prefix + "e30.0000000000000000.")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		if err := q.Payload.Check(); err != nil {
			t.Fatalf("parsed a payload that does not check: %v", err)
		}
		_ = Redact(s)
	})
}

// fleetPKI is a CA, an enrollment server certificate for 127.0.0.1 and a signer.
type fleetPKI struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	srv     *httptest.Server
	signer  *Signer
	secrets string

	mu       sync.Mutex
	answered []string // the Content-Type of each simpleenroll answer, in order
}

func newFleetPKI(t *testing.T) *fleetPKI {
	t.Helper()
	return newFleetPKIWith(t, nil)
}

// newFleetPKIWith is newFleetPKI with edit applied to the signer before it serves.
func newFleetPKIWith(t *testing.T, edit func(*Signer)) *fleetPKI {
	t.Helper()
	ca, caKey, err := NewCA("test fleet CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, sk, err := IssueServer(ca, caKey, []string{"127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(t.TempDir(), "secrets.json")
	s := &Signer{CA: ca, CAKey: caKey, Secrets: secrets}
	if edit != nil {
		edit(s)
	}
	f := &fleetPKI{ca: ca, caKey: caKey, signer: s, secrets: secrets}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		if r.URL.Path == EnrollPath {
			f.mu.Lock()
			f.answered = append(f.answered, w.Header().Get("Content-Type"))
			f.mu.Unlock()
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{sc.Raw, ca.Raw}, PrivateKey: sk}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.srv = srv
	return f
}

func (f *fleetPKI) provision(t *testing.T, device string, ttl time.Duration) Payload {
	t.Helper()
	p, err := NewPayload(Payload{DeviceID: device, Broker: "ssl://127.0.0.1:8883", CAFingerprint: Fingerprint(f.ca.Raw), EnrollURL: f.srv.URL}, time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddRecord(f.secrets, RecordFor(p)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnrollSaveAndReuse(t *testing.T) {
	f := newFleetPKI(t)
	p := f.provision(t, "shop-7", time.Hour)
	ctx := context.Background()
	e, err := Enroll(ctx, p, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e.Cert.Subject.CommonName != "shop-7" || !e.CA.Equal(f.ca) {
		t.Fatalf("certificate %v from %v", e.Cert.Subject, e.CA.Subject)
	}
	// posd's client and the reference server speak EST's answer, not the PEM chain.
	f.mu.Lock()
	answered := append([]string(nil), f.answered...)
	f.mu.Unlock()
	if len(answered) != 1 || answered[0] != CertsOnlyContentType {
		t.Fatalf("the server answered %q, want one %q", answered, CertsOnlyContentType)
	}
	dir := t.TempDir()
	st, err := Save(dir, p, e, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{StateFile, KeyFile, CertFile, CAFile, UsedFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}
	got, ok, err := Load(dir)
	if err != nil || !ok || got.DeviceID != "shop-7" || got.CertFingerprint != st.CertFingerprint {
		t.Fatalf("load: %+v %v %v", got, ok, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if strings.Contains(string(b), p.Secret) {
		t.Fatal("pairing.json holds the secret")
	}
	if used, _ := Used(dir, p.Nonce); !used {
		t.Fatal("nonce not recorded as used")
	}
	// The same QR again (say, on a second box): the signer refuses, durably.
	if _, err := Enroll(ctx, p, 10*time.Second); !errors.Is(err, ErrReused) {
		t.Fatalf("second enrollment: %v", err)
	}
	s2 := &Signer{CA: f.ca, CAKey: f.signer.CAKey, Secrets: f.secrets}
	if _, err := s2.Sign("shop-7", p.Secret, nil); err == nil {
		t.Fatal("a fresh signer on the same file signed a used secret")
	}
	if err := Reset(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Load(dir); ok {
		t.Fatal("still paired after reset")
	}
	if used, _ := Used(dir, p.Nonce); !used {
		t.Fatal("reset forgot the used nonce")
	}
}

func TestEnrollRefusals(t *testing.T) {
	f := newFleetPKI(t)
	ctx := context.Background()
	// Expired at the signer (the device's clock was not trusted).
	p := f.provision(t, "shop-1", time.Second)
	f.signer.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := Enroll(ctx, p, 10*time.Second); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	f.signer.Now = nil
	// A secret for another device.
	p2 := f.provision(t, "shop-2", time.Hour)
	p2.DeviceID = "shop-3"
	if _, err := Enroll(ctx, p2, 10*time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("other device: %v", err)
	}
	// A wrong secret.
	p3 := f.provision(t, "shop-4", time.Hour)
	p3.Secret = base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	if _, err := Enroll(ctx, p3, 10*time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("wrong secret: %v", err)
	}
	// A wrong CA pin (another CA: a man in the middle) is refused before any request.
	other, _, _ := NewCA("other", time.Hour)
	p4 := f.provision(t, "shop-5", time.Hour)
	p4.CAFingerprint = Fingerprint(other.Raw)
	if _, err := Enroll(ctx, p4, 10*time.Second); !errors.Is(err, ErrPin) {
		t.Fatalf("wrong pin: %v", err)
	}
	// The pin held, so the secret is still unused: the right pin works.
	p4.CAFingerprint = Fingerprint(f.ca.Raw)
	if _, err := Enroll(ctx, p4, 10*time.Second); err != nil {
		t.Fatalf("after a refused pin: %v", err)
	}
}

func TestSignerRefusesBadRequests(t *testing.T) {
	f := newFleetPKI(t)
	p := f.provision(t, "shop-9", time.Hour)
	c := f.srv.Client()
	for name, req := range map[string]func() *http.Request{
		"no auth": func() *http.Request {
			r, _ := http.NewRequest("POST", f.srv.URL+EnrollPath, strings.NewReader("AAAA"))
			return r
		},
		"garbage csr": func() *http.Request {
			r, _ := http.NewRequest("POST", f.srv.URL+EnrollPath, strings.NewReader("not base64!"))
			r.SetBasicAuth("shop-9", p.Secret)
			return r
		},
		"get": func() *http.Request {
			r, _ := http.NewRequest("GET", f.srv.URL+EnrollPath, nil)
			return r
		},
	} {
		resp, err := c.Do(req())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: %s", name, resp.Status)
		}
	}
	// None of those used the secret.
	if _, err := Enroll(context.Background(), p, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
