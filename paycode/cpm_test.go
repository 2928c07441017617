package paycode

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// tlv encodes one BER-TLV object; tag is given as hex ("9F26").
func tlv(tag string, val []byte) []byte {
	t, err := hex.DecodeString(tag)
	if err != nil {
		panic(err)
	}
	out := append([]byte(nil), t...)
	switch n := len(val); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, val...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func hx(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// cpmSample is shaped like the EMVCo CPM specification's example: one Visa-like
// application with label, track 2 and PAN, cardholder name, language, last 4, and an
// application specific transparent template with the cryptogram data. The PAN is a test
// PAN (4761 7390 0101 0119, Luhn-valid).
func cpmSample() []byte {
	app := cat(
		tlv("4F", hx("A0000000031010")),
		tlv("50", []byte("VISA CREDIT")),
		tlv("57", hx("4761739001010119D22122011758928889")),
		tlv("5A", hx("4761739001010119")),
		tlv("5F20", []byte("CARDHOLDER/EMV")),
		tlv("5F2D", []byte("en")),
		tlv("9F25", hx("0119")),
		tlv("63", cat(
			tlv("9F10", hx("06010A03A00000")),
			tlv("9F26", hx("584FD385FA234BCC")),
			tlv("9F27", hx("80")),
			tlv("9F36", hx("0001")),
			tlv("9F37", hx("6D58EF13")),
		)),
	)
	return cat(tlv("85", []byte("CPV01")), tlv("61", app))
}

func TestDecodeCPM(t *testing.T) {
	code := base64.StdEncoding.EncodeToString(cpmSample())
	r, err := Identify(code)
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if r.Kind != KindEMVCPM || r.Scheme != "visa" || r.CPM == nil || len(r.Warnings) != 0 {
		t.Fatalf("result = %+v", r)
	}
	a := r.CPM.Applications[0]
	if a.AID != "A0000000031010" || a.Label != "VISA CREDIT" || !a.HasTrack2 || !a.HasCryptogram || a.PANLast4 != "0119" || a.ATC != "0001" {
		t.Errorf("application = %+v", a)
	}
	if r.CPM.MaskedPAN != Mask("4761739001010119") || !strings.HasPrefix(r.CPM.MaskedPAN, "…0119#") {
		t.Errorf("masked PAN = %q", r.CPM.MaskedPAN)
	}
	// Masked by construction: nothing in the result holds the PAN, track 2 or cryptogram.
	dump := strings.ToUpper(strings.Join([]string{r.CPM.MaskedPAN, a.AID, a.Label, a.ATC, a.CryptogramInf, r.Masked}, "|"))
	for _, secret := range []string{"4761739001010119", "584FD385FA234BCC", "D2212201", "CARDHOLDER"} {
		if strings.Contains(dump, secret) {
			t.Errorf("result leaks %s", secret)
		}
	}
}

func TestDecodeCPMVariants(t *testing.T) {
	twoApps := cat(tlv("85", []byte("CPV01")),
		tlv("61", cat(tlv("4F", hx("A0000000041010")), tlv("50", []byte("MASTERCARD")))),
		tlv("61", cat(tlv("4F", hx("A0000003330101")), tlv("50", []byte("UNIONPAY")))),
		tlv("62", cat(tlv("5A", hx("5413330089600010")), tlv("63", tlv("9F26", hx("0102030405060708"))))),
	)
	jpqr := cat(tlv("85", []byte("JPQR1")), tlv("61", cat(tlv("4F", hx("0000000000000001")), tlv("57", []byte("12345678901234567890")))))
	tests := []struct {
		name, code, scheme string
		warn               int
	}{
		{"common data template", base64.StdEncoding.EncodeToString(twoApps), "mastercard", 0},
		{"unpadded base64", base64.RawStdEncoding.EncodeToString(twoApps), "mastercard", 1},
		{"jpqr cpm", base64.StdEncoding.EncodeToString(jpqr), "jpqr", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Identify(tt.code)
			if err != nil || r.Scheme != tt.scheme || len(r.Warnings) != tt.warn {
				t.Errorf("Identify = %+v, %v", r, err)
			}
		})
	}
}

func TestDecodeCPMErrors(t *testing.T) {
	good := cpmSample()
	noCrypto := cat(tlv("85", []byte("CPV01")), tlv("61", cat(tlv("4F", hx("A0000000031010")), tlv("5A", hx("4761739001010118")))))
	tests := []struct {
		name string
		raw  []byte
		text string
	}{
		{"truncated", good[:len(good)-3], "runs past the end"},
		{"wrong format", cat(tlv("85", []byte("CPV02")), good[7:]), "must be CPV01"},
		{"85 not first", cat(good[7:], tlv("85", []byte("CPV01"))), "must come first"},
		{"no application", tlv("85", []byte("CPV01")), "no application template"},
		{"no aid", cat(tlv("85", []byte("CPV01")), tlv("61", tlv("5A", hx("4761739001010119")))), "no application identifier"},
		{"no pan", cat(tlv("85", []byte("CPV01")), tlv("61", tlv("4F", hx("A0000000031010")))), "neither track 2"},
		{"bad bcd", cat(tlv("85", []byte("CPV01")), tlv("61", cat(tlv("4F", hx("A0000000031010")), tlv("5A", hx("47617390010101AB"))))), "BCD"},
		{"duplicate tag", cat(tlv("85", []byte("CPV01")), tlv("61", cat(tlv("4F", hx("A0000000031010")), tlv("4F", hx("A0000000031010"))))), "duplicate tag 4F"},
		{"short cryptogram", cat(tlv("85", []byte("CPV01")), tlv("61", cat(tlv("4F", hx("A0000000031010")), tlv("5A", hx("4761739001010119")), tlv("63", tlv("9F26", hx("0102")))))), "8 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := base64.StdEncoding.EncodeToString(tt.raw)
			_, _, err := DecodeCPM(code)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want ErrMalformed with %q", err, tt.text)
			}
			if err != nil && (strings.Contains(err.Error(), "4761739001010119") || strings.Contains(err.Error(), code)) {
				t.Errorf("error leaks data: %v", err)
			}
		})
	}
	// Luhn failure and a missing cryptogram are warnings, not errors.
	_, warn, err := DecodeCPM(base64.StdEncoding.EncodeToString(noCrypto))
	if err != nil || len(warn) != 2 {
		t.Errorf("DecodeCPM = %q, %v", warn, err)
	}
	if _, _, err := DecodeCPM("h!!!"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad base64: %v", err)
	}
}

func TestDecodeCPMLongForm(t *testing.T) {
	// Issuer application data long enough that template 61 needs a 0x81 length byte.
	app := cat(tlv("4F", hx("A0000000651010")), tlv("50", []byte("JCB")), tlv("5A", hx("3569990010095841")),
		tlv("63", cat(tlv("9F10", make([]byte, 120)), tlv("9F26", hx("0102030405060708")))))
	raw := cat(tlv("85", []byte("CPV01")), tlv("61", app))
	if raw[8] != 0x81 {
		t.Fatalf("sample does not use the long form: % X", raw[:10])
	}
	r, err := Identify(base64.StdEncoding.EncodeToString(raw))
	if err != nil || r.Scheme != "jcb" || !r.CPM.Applications[0].HasCryptogram {
		t.Errorf("Identify = %+v, %v", r, err)
	}
}

func TestCPMSpecExample(t *testing.T) {
	// EMVCo CPM specification example (see testdata/public_samples.txt).
	const spec = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw=="
	c, warn, err := DecodeCPM(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Applications) != 2 || c.Applications[0].AID != "A0000000555555" || c.Applications[1].Label != "Product2" {
		t.Errorf("applications = %+v", c.Applications)
	}
	a := c.Applications[0]
	if !a.HasCryptogram || a.ATC != "0001" || a.Language != "ruesdeen" || c.MaskedPAN != Mask("1234567890123458") {
		t.Errorf("application = %+v, masked %s", a, c.MaskedPAN)
	}
	if len(warn) != 2 || !strings.Contains(warn[0], "Luhn") {
		t.Errorf("warnings = %q", warn)
	}
}
