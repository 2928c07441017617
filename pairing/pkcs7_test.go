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
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needOpenSSL returns the openssl CLI: missing, the test fails under CI and is skipped
// elsewhere.
func needOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed (CI=true): apt-get install openssl")
		}
		t.Skip("openssl is not installed: apt-get install openssl")
	}
	return p
}

// openssl runs the openssl CLI with stdin and returns its standard output.
func openssl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	needOpenSSL(t)
	out, err := runOpenSSL(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runOpenSSL is openssl for a goroutine other than the test's (no t.Fatal there).
func runOpenSSL(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("openssl %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

// opensslCerts is what `openssl base64 -d | openssl pkcs7 -inform DER -print_certs`
// reads from a base64 certs-only answer.
func opensslCerts(t *testing.T, b64 []byte) []*x509.Certificate {
	t.Helper()
	der := openssl(t, b64, "base64", "-d")
	out := openssl(t, der, "pkcs7", "-inform", "DER", "-print_certs")
	var certs []*x509.Certificate
	for rest := out; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("openssl printed no certificate:\n%s", out)
	}
	return certs
}

// csrFor makes a P-256 key and its certificate request for device.
func csrFor(t *testing.T, device string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: device}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// TestOpenSSLReadsTheServersAnswers: the reference server's simpleenroll and cacerts
// answers are what openssl reads as PKCS#7 certs-only: the issued certificate (for the
// request's key) and the CA.
func TestOpenSSLReadsTheServersAnswers(t *testing.T) {
	needOpenSSL(t)
	f := newFleetPKI(t)
	p := f.provision(t, "shop-11", time.Hour)
	key, csr := csrFor(t, "shop-11")
	c := f.srv.Client()

	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+EnrollPath, strings.NewReader(base64.StdEncoding.EncodeToString(csr)))
	req.Header.Set("Content-Type", CSRType)
	req.SetBasicAuth("shop-11", p.Secret)
	resp, err := c.Do(req) // no Accept: EST's answer
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != CertsOnlyContentType {
		t.Fatalf("simpleenroll: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	certs := opensslCerts(t, body)
	if len(certs) != 1 || certs[0].Subject.CommonName != "shop-11" || !certs[0].PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatalf("openssl read %d certificates, the first %v", len(certs), certs[0].Subject)
	}
	if err := certs[0].CheckSignatureFrom(f.ca); err != nil {
		t.Fatalf("the issued certificate: %v", err)
	}
	ours, err := ParseCertsOnly(body)
	if err != nil || len(ours) != 1 || !ours[0].Equal(certs[0]) {
		t.Fatalf("ParseCertsOnly read %d certificates (%v), not openssl's", len(ours), err)
	}

	resp, err = c.Get(f.srv.URL + CACertsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != CertsOnlyContentType {
		t.Fatalf("cacerts: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	if certs := opensslCerts(t, body); len(certs) != 1 || !certs[0].Equal(f.ca) {
		t.Fatalf("cacerts: openssl read %d certificates, not the CA", len(certs))
	}
}

// TestServerAnswersPEMOnlyWhenAsked: the PEM chain goes only to a client whose Accept
// prefers it; wildcards and EST clients get certs-only.
func TestServerAnswersPEMOnlyWhenAsked(t *testing.T) {
	f := newFleetPKI(t)
	serverAnswers(t, f, []answer{
		{"", CertsOnlyContentType},
		{"*/*", CertsOnlyContentType},
		{"application/*", CertsOnlyContentType},
		{CertsOnlyType, CertsOnlyContentType},
		{acceptAnswer, CertsOnlyContentType},
		{"application/pkcs7-mime;q=0.4, application/pem-certificate-chain", ChainType},
		{ChainType, ChainType},
		{"text/html, " + ChainType + ";q=0.9", ChainType},
		{ChainType + ";q=0", CertsOnlyContentType},
	})
	// -legacy-pem: the PEM chain to a request without Accept (older posd); EST
	// clients still get certs-only.
	legacy := newFleetPKIWith(t, func(s *Signer) { s.LegacyPEM = true })
	serverAnswers(t, legacy, []answer{
		{"", ChainType},
		{CertsOnlyType, CertsOnlyContentType},
		{"*/*", CertsOnlyContentType},
		{acceptAnswer, CertsOnlyContentType},
	})
}

// answer is a request's Accept header and the Content-Type it must be answered with.
type answer struct{ accept, want string }

// serverAnswers enrolls once per answer with its Accept header and checks the
// answer's Content-Type, and that the answer holds the certificate for the key.
func serverAnswers(t *testing.T, f *fleetPKI, answers []answer) {
	t.Helper()
	for _, tc := range answers {
		p := f.provision(t, "shop-12", time.Hour)
		key, csr := csrFor(t, "shop-12")
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+EnrollPath, strings.NewReader(base64.StdEncoding.EncodeToString(csr)))
		req.SetBasicAuth("shop-12", p.Secret)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := resp.Header.Get("Content-Type")
		if resp.StatusCode != http.StatusOK || got != tc.want {
			t.Errorf("Accept %q: %s %q, want %q", tc.accept, resp.Status, got, tc.want)
			continue
		}
		// Either answer reads, and holds the certificate for the request's key.
		certs, err := answerCerts(got, body)
		if err != nil {
			t.Fatalf("Accept %q: %v", tc.accept, err)
		}
		if _, err := ours(certs, key); err != nil {
			t.Fatalf("Accept %q: %v", tc.accept, err)
		}
	}
}

// estServer is an EST server for the fleet's CA (its chain holds the CA, so the QR's
// pin holds) answering simpleenroll with answer(the issued certificate's DER).
func estServer(t *testing.T, f *fleetPKI, answer func(w http.ResponseWriter, issued []byte)) string {
	t.Helper()
	sc, sk, err := IssueServer(f.ca, f.caKey, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != EnrollPath || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		device, secret, _ := r.BasicAuth()
		body, _ := io.ReadAll(r.Body)
		csr, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		der, err := f.signer.Sign(device, secret, csr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		answer(w, der)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{sc.Raw, f.ca.Raw}, PrivateKey: sk}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestEnrollReadsOpenSSLBags: posd's client enrolls with an EST server answering a
// certs-only bag made by openssl crl2pkcs7, the device certificate and the CA in
// either order (a SET: the CA may come first).
func TestEnrollReadsOpenSSLBags(t *testing.T) {
	needOpenSSL(t)
	f := newFleetPKI(t)
	for _, caFirst := range []bool{false, true} {
		name := map[bool]string{false: "device first", true: "CA first"}[caFirst]
		t.Run(name, func(t *testing.T) {
			var bagCerts []*x509.Certificate
			url := estServer(t, f, func(w http.ResponseWriter, issued []byte) {
				dev := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued})
				ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw})
				chain := append(dev, ca...)
				if caFirst {
					chain = append(ca, dev...)
				}
				path := filepath.Join(t.TempDir(), "chain.pem")
				if err := os.WriteFile(path, chain, 0o600); err != nil {
					t.Error(err)
					return
				}
				der, err := runOpenSSL(nil, "crl2pkcs7", "-nocrl", "-certfile", path, "-outform", "DER")
				var b64 []byte
				if err == nil {
					b64, err = runOpenSSL(der, "base64") // lines of 64 characters
				}
				if err != nil {
					t.Error(err)
					http.Error(w, "openssl failed", http.StatusInternalServerError)
					return
				}
				if bagCerts, err = ParseCertsOnlyDER(der); err != nil {
					t.Errorf("openssl's bag: %v", err)
				}
				w.Header().Set("Content-Type", "application/pkcs7-mime; smime-type=certs-only")
				w.Header().Set("Content-Transfer-Encoding", "base64")
				_, _ = w.Write(b64)
			})
			p := f.provision(t, "shop-13", time.Hour)
			p.EnrollURL = url
			e, err := Enroll(context.Background(), p, 10*time.Second)
			if err != nil {
				t.Fatalf("enroll: %v", err)
			}
			// The bag was in the order the test says, so the pick was by key.
			if len(bagCerts) != 2 || bagCerts[0].Equal(f.ca) != caFirst {
				t.Fatalf("openssl's bag: %d certificates, the CA first: %v", len(bagCerts), len(bagCerts) > 0 && bagCerts[0].Equal(f.ca))
			}
			if e.Cert.Equal(f.ca) || e.Cert.Subject.CommonName != "shop-13" || !e.CA.Equal(f.ca) {
				t.Fatalf("enrolled %v issued by %v", e.Cert.Subject, e.CA.Subject)
			}
		})
	}
}

// TestEnrollRefusesBadAnswers: a garbage, truncated or mistyped answer is a clear
// error; Enroll gives nothing to save, so posd writes no file.
func TestEnrollRefusesBadAnswers(t *testing.T) {
	f := newFleetPKI(t)
	good := func(issued []byte) []byte {
		c, err := x509.ParseCertificate(issued)
		if err != nil {
			t.Fatal(err)
		}
		b, err := EncodeCertsOnly(c, f.ca)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, ctype string
		body        func(issued []byte) []byte
		want        string
	}{
		{"garbage", CertsOnlyContentType, func([]byte) []byte { return []byte("<html>502 Bad Gateway</html>") }, "not base64"},
		{"truncated", CertsOnlyContentType, func(d []byte) []byte {
			der, _ := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(good(d)), nil)))
			return []byte(base64.StdEncoding.EncodeToString(der[:len(der)/2]))
		}, "not a PKCS#7 certs-only answer"},
		{"raw DER", CertsOnlyContentType, func(d []byte) []byte {
			der, _ := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(good(d)), nil)))
			return der
		}, "binary DER, not base64"},
		{"empty", CertsOnlyContentType, func([]byte) []byte { return nil }, "empty"},
		{"no content type", "", good, "no Content-Type"},
		{"wrong content type", "text/html", good, `"text/html", not application/pkcs7-mime`},
		{"other smime-type", "application/pkcs7-mime; smime-type=server-generated-key", good, "not certs-only"},
		{"PEM typed as PKCS#7", CertsOnlyContentType, func(d []byte) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})
		}, "PEM, not base64 DER"},
		{"only the CA", CertsOnlyContentType, func([]byte) []byte {
			b, _ := EncodeCertsOnly(f.ca)
			return b
		}, "the enrollment answer holds no certificate for this terminal's key (1 certificates)"},
		{"garbage PEM", ChainType, func([]byte) []byte { return []byte("-----BEGIN CERTIFICATE-----\nAAAA\n") }, "not a PEM certificate chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := estServer(t, f, func(w http.ResponseWriter, issued []byte) {
				if tc.ctype == "" {
					w.Header()["Content-Type"] = nil // no sniffing either
				} else {
					w.Header().Set("Content-Type", tc.ctype)
				}
				_, _ = w.Write(tc.body(issued))
			})
			p := f.provision(t, "shop-14", time.Hour)
			p.EnrollURL = url
			dir := t.TempDir()
			// As posd does: save only what Enroll gave.
			e, err := Enroll(context.Background(), p, 10*time.Second)
			if err == nil {
				_, _ = Save(dir, p, e, time.Now())
				t.Fatal("enrolled from a bad answer")
			}
			if e != nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "pairing: ") {
				t.Fatalf("got %v (%v), want an error with %q", e, err, tc.want)
			}
			if names, _ := os.ReadDir(dir); len(names) != 0 {
				t.Fatalf("files written: %v", names)
			}
		})
	}
}

// mangle returns the DER of a certs-only structure holding certs, edited by edit.
func mangle(t testing.TB, edit func(*signedData), certs ...*x509.Certificate) []byte {
	t.Helper()
	var raw []byte
	for _, c := range certs {
		raw = append(raw, c.Raw...)
	}
	sd := signedData{
		Version:          1,
		DigestAlgorithms: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{}},
		EncapContentInfo: encapContentInfo{EContentType: oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: raw},
		SignerInfos:      asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{}},
	}
	if edit != nil {
		edit(&sd)
	}
	sdDER, err := asn1.Marshal(sd)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(contentInfo{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sdDER}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertsOnlyRoundTripAndRefusals(t *testing.T) {
	f := newFleetPKI(t)
	other, _, err := NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	der, err := MarshalCertsOnly(f.ca, other)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(der, mangle(t, nil, f.ca, other)) && !bytes.Equal(der, mangle(t, nil, other, f.ca)) {
		t.Fatal("MarshalCertsOnly differs from the hand-made structure")
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	wrap := func(s string, n int, eol string) string {
		var b strings.Builder
		for len(s) > n {
			b.WriteString(s[:n] + eol)
			s = s[n:]
		}
		return b.String() + s + eol
	}
	for _, in := range []string{b64, wrap(b64, 64, "\n"), wrap(b64, 76, "\r\n"), " \n" + wrap(b64, 64, "\r\n") + "\n\n"} {
		certs, err := ParseCertsOnly([]byte(in))
		if err != nil || len(certs) != 2 {
			t.Fatalf("%d certificates: %v", len(certs), err)
		}
	}
	enc, err := EncodeCertsOnly(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(enc), "\r\n"), "\r\n") {
		if len(line) > 64 {
			t.Fatalf("a base64 line of %d characters", len(line))
		}
	}

	outer := func(d []byte) []byte { // the header of the outer SEQUENCE
		var rv asn1.RawValue
		if _, err := asn1.Unmarshal(d, &rv); err != nil {
			t.Fatal(err)
		}
		return d[:len(rv.FullBytes)-len(rv.Bytes)]
	}
	hdr := outer(der)
	ber := append(append([]byte{0x30, 0x80}, der[len(hdr):]...), 0, 0)
	// BER as BouncyCastle writes CMS: every constructed element above the
	// certificates with an indefinite length (and one length not minimal).
	indef := func(tag byte, parts ...[]byte) []byte {
		return append(append([]byte{tag, 0x80}, bytes.Join(parts, nil)...), 0, 0)
	}
	mustDER := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	certsDER := append(append([]byte(nil), other.Raw...), f.ca.Raw...)
	bc := indef(0x30, mustDER(oidSignedData), indef(0xa0, indef(0x30,
		[]byte{0x02, 0x81, 0x01, 0x01}, // version 1, a non-minimal length
		[]byte{0x31, 0x80, 0, 0},
		indef(0x30, mustDER(oidData)),
		indef(0xa0, certsDER),
		[]byte{0x31, 0x00})))
	for name, in := range map[string][]byte{"outer indefinite": ber, "BouncyCastle-like": bc} {
		certs, err := ParseCertsOnlyDER(in)
		if err != nil || len(certs) != 2 || !certs[0].Equal(other) && !certs[1].Equal(other) {
			t.Fatalf("%s: %d certificates, %v", name, len(certs), err)
		}
	}
	if _, err := ParseCertsOnlyDER(bc[:len(bc)-4]); err == nil {
		t.Fatal("an unterminated BER structure parsed")
	}
	octet := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{4, 1, 0}}
	many := make([]*x509.Certificate, maxBagCerts+1)
	for i := range many {
		many[i] = f.ca
	}
	for name, tc := range map[string]struct {
		der  []byte
		want string
	}{
		"trailing byte":    {append(append([]byte(nil), der...), 0), "bytes after the structure"},
		"truncated":        {der[:len(der)-10], "not a PKCS#7"},
		"BER unterminated": {ber[:len(ber)-2], "not a PKCS#7"},
		"not SignedData":   {bytes.Replace(der, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}, 1), "not signedData"},
		"version 3":        {mangle(t, func(s *signedData) { s.Version = 3 }, f.ca), "version 3"},
		"signers":          {mangle(t, func(s *signedData) { s.SignerInfos.Bytes = []byte{0x30, 0} }, f.ca), "has signers"},
		"CRLs": {mangle(t, func(s *signedData) {
			s.CRLs = asn1.RawValue{Class: 2, Tag: 1, IsCompound: true, Bytes: []byte{0x30, 0}}
		}, f.ca), "carries CRLs"},
		"content":         {mangle(t, func(s *signedData) { s.EncapContentInfo.EContent = octet }, f.ca), "carries content"},
		"other content":   {mangle(t, func(s *signedData) { s.EncapContentInfo.EContentType = oidSignedData }, f.ca), "not data"},
		"no certificates": {mangle(t, nil), "no certificates"},
		"not a cert":      {mangle(t, func(s *signedData) { s.Certificates.Bytes = []byte{0xa1, 0} }), "not an X.509 certificate"},
		"bad cert":        {mangle(t, func(s *signedData) { s.Certificates.Bytes = []byte{0x30, 1, 0} }), "certificate 1"},
		"too many":        {mangle(t, nil, many...), "more than 16"},
	} {
		certs, err := ParseCertsOnlyDER(tc.der)
		if err == nil || !errors.Is(err, ErrCertsOnly) || !strings.Contains(err.Error(), tc.want) || certs != nil {
			t.Errorf("%s: %d certificates, %v (want %q)", name, len(certs), err, tc.want)
		}
		// The same in base64 through ParseCertsOnly.
		if _, err := ParseCertsOnly([]byte(base64.StdEncoding.EncodeToString(tc.der))); err == nil {
			t.Errorf("%s: ParseCertsOnly accepted it", name)
		}
	}
	// Not base64 at all, or too big.
	for _, in := range []string{"", "\r\n", "AAA", "AAAA!", "-----BEGIN PKCS7-----", strings.Repeat("A", maxAnswer+4)} {
		if _, err := ParseCertsOnly([]byte(in)); !errors.Is(err, ErrCertsOnly) {
			t.Errorf("%.20q: %v", in, err)
		}
	}
}

func FuzzParseCertsOnly(f *testing.F) {
	ca, _, err := NewCA("fuzz CA", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	der := mangle(f, nil, ca)
	f.Add(der)
	f.Add([]byte(base64.StdEncoding.EncodeToString(der)))
	f.Add(mangle(f, func(s *signedData) { s.SignerInfos.Bytes = []byte{0x30, 0} }, ca))
	f.Add([]byte("MIIB\r\nAAAA\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, []byte(base64.StdEncoding.EncodeToString(b))} {
			certs, err := ParseCertsOnly(in)
			if err != nil {
				if certs != nil || !errors.Is(err, ErrCertsOnly) {
					t.Fatalf("an error (%v) with %d certificates", err, len(certs))
				}
				continue
			}
			if len(certs) == 0 || len(certs) > maxBagCerts {
				t.Fatalf("%d certificates", len(certs))
			}
			// What parses writes back and parses to the same certificates.
			again, err := MarshalCertsOnly(certs...)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseCertsOnlyDER(again)
			if err != nil || len(back) != len(certs) {
				t.Fatalf("re-parse: %d certificates, %v", len(back), err)
			}
		}
	})
}
