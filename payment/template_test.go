package payment

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/paycode"
)

// sampleMerchantQR is a static KRW code of a made-up acquirer (as in
// deploy/posd.example.json), with a Korean language template.
const sampleMerchantQR = "00020101021126480020com.example.acquirer0120SAMPLE-MERCHANT-00015204541153034105802KR5918SEOUL CORNER STORE6005SEOUL62090305SHOP764230002KO0107서울코너스토어0202서울63040AD9"

// withCRC rebuilds the CRC of a code whose content was edited.
func withCRC(body string) string {
	body += "6304"
	const hex = "0123456789ABCDEF"
	c := paycode.CRC16(body)
	return body + string([]byte{hex[c>>12], hex[c>>8&15], hex[c>>4&15], hex[c&15]})
}

func TestParseMerchantCode(t *testing.T) {
	m, err := ParseMerchantCode(sampleMerchantQR, "shop-7-counter-1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Currency != "410" || m.MerchantName != "SEOUL CORNER STORE" || len(m.MerchantAccounts) != 1 || m.Amount != "" {
		t.Fatalf("template %+v", m)
	}
	if l, _ := m.AdditionalField(paycode.AddTerminalLabel); l != "shop-7-counter-1" {
		t.Errorf("terminal label %q, want the device id", l)
	}
	// A terminal label of the template wins over the device id; a long id is clipped.
	withLabel := withCRC(strings.Replace(sampleMerchantQR[:len(sampleMerchantQR)-8], "62090305SHOP7", "62180305SHOP70705TILL2", 1))
	if m, err := ParseMerchantCode(withLabel, "shop-7"); err != nil {
		t.Fatal(err)
	} else if l, _ := m.AdditionalField(paycode.AddTerminalLabel); l != "TILL2" {
		t.Errorf("terminal label %q, want the template's", l)
	}
	if m, err := ParseMerchantCode(sampleMerchantQR, strings.Repeat("x", 64)); err != nil {
		t.Fatal(err)
	} else if l, _ := m.AdditionalField(paycode.AddTerminalLabel); len(l) != 25 {
		t.Errorf("terminal label %q not clipped to 25", l)
	}

	noCRC := sampleMerchantQR[:len(sampleMerchantQR)-4]
	for name, tc := range map[string]struct {
		payload string
		want    string
		is      error
	}{
		"empty":                {"", "empty", nil},
		"bad CRC":              {noCRC + "0000", "checksum", paycode.ErrChecksum},
		"garbage":              {"hello, world", "not an EMVCo merchant-presented code", nil},
		"web address":          {"https://pay.example.com/shop7", "not an EMVCo merchant-presented code", nil},
		"white space":          {sampleMerchantQR + "\n", "white space", nil},
		"truncated":            {sampleMerchantQR[:40], "malformed", paycode.ErrMalformed},
		"customer EMV":         {"hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==", "customer's payment code (emv_cpm)", nil},
		"customer wallet":      {"281234567890123456", "customer's payment code (wallet)", nil},
		"fixed amount":         {withCRC(strings.Replace(noCRC[:len(noCRC)-4], "5303410", "5303410540512000", 1)), "fixed amount", paycode.ErrAmount},
		"no merchant account":  {withCRC("000201010211520454115303410" + "5802KR5918SEOUL CORNER STORE6005SEOUL"), "no merchant account", paycode.ErrMalformed},
		"currency not numeric": {withCRC(strings.Replace(noCRC[:len(noCRC)-4], "5303410", "5303KRW", 1)), "ISO 4217", paycode.ErrCurrency},
		"unknown currency":     {withCRC(strings.Replace(noCRC[:len(noCRC)-4], "5303410", "5303999", 1)), "ISO 4217", paycode.ErrCurrency},
		"no currency":          {withCRC(strings.Replace(noCRC[:len(noCRC)-4], "5303410", "", 1)), "currency (id 53) is missing", paycode.ErrMalformed},
		"too long":             {strings.Repeat("0", MaxMerchantCodeLen+1), "longer than", nil},
		// Template 62 full: no room for the sale's reference label.
		"no room for the reference": {withCRC(strings.Replace(noCRC[:len(noCRC)-4], "62090305SHOP7", "62950391"+strings.Repeat("S", 91), 1)), "no dynamic code", paycode.ErrBuild},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := ParseMerchantCode(tc.payload, "shop-7")
			if err == nil || m != nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "payment: merchant QR") {
				t.Errorf("error %q, want it to start with \"payment: merchant QR\" and mention %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			if len(tc.payload) > 8 && strings.Contains(err.Error(), tc.payload) {
				t.Errorf("error repeats the payload: %q", err)
			}
		})
	}
}

func TestPresentCodeKeepsTheTemplate(t *testing.T) {
	tmpl, err := ParseMerchantCode(sampleMerchantQR, "shop-7")
	if err != nil {
		t.Fatal(err)
	}
	before := *tmpl
	qr, err := PresentCode(tmpl, 12000, "krw", "0000000000000000000000ABC")
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := paycode.Decode(qr)
	if err != nil {
		t.Fatalf("dynamic code does not decode: %v", err)
	}
	if !m.Dynamic() || m.Amount != "12000" || m.Currency != "410" {
		t.Errorf("dynamic code: initiation %q amount %q currency %q", m.PointOfInitiation, m.Amount, m.Currency)
	}
	ref, _ := m.AdditionalField(paycode.AddReferenceLabel)
	store, _ := m.AdditionalField(paycode.AddStoreLabel)
	term, _ := m.AdditionalField(paycode.AddTerminalLabel)
	if ref != "0000000000000000000000ABC" || store != "SHOP7" || term != "shop-7" {
		t.Errorf("additional data %+v", m.Additional)
	}
	orig, _, _ := paycode.Decode(sampleMerchantQR)
	if m.MerchantAccounts[0].GUI != orig.MerchantAccounts[0].GUI || m.MerchantAccounts[0].Fields[0] != orig.MerchantAccounts[0].Fields[0] ||
		m.MCC != orig.MCC || m.Country != orig.Country || m.MerchantName != orig.MerchantName || m.MerchantCity != orig.MerchantCity ||
		len(m.Language) != 3 || m.Language[1].Value != "서울코너스토어" {
		t.Errorf("template fields changed: %+v", m)
	}
	// The template itself is not modified by building a code from it.
	if tmpl.Amount != "" || tmpl.PointOfInitiation != paycode.PointStatic || len(tmpl.Additional) != len(before.Additional) {
		t.Errorf("template modified: %+v", tmpl)
	}
	if _, err := PresentCode(tmpl, 500, "JPY", "X"); !errors.Is(err, ErrCurrencyNotAccepted) || !strings.Contains(err.Error(), "KRW only") {
		t.Errorf("JPY against a KRW template: %v", err)
	}
	if _, err := PresentCode(tmpl, 0, "KRW", "X"); !errors.Is(err, ErrBadAmount) {
		t.Errorf("zero amount: %v", err)
	}
	// 10^12 fils is 1000000000.000 BHD: 14 characters, more than an EMVCo amount holds.
	bhd := &paycode.MPM{MerchantAccounts: tmpl.MerchantAccounts, MerchantName: "X", MerchantCity: "Y", Country: "BH"}
	if _, err := PresentCode(bhd, MaxAmountMinor, "BHD", "X"); !errors.Is(err, ErrBadAmount) {
		t.Errorf("BHD amount of 14 characters: %v", err)
	}
}

// TestPresentRefusesAnotherCurrency: a sale in another currency than the template
// fixes is refused before anything is stored.
func TestPresentRefusesAnotherCurrency(t *testing.T) {
	tmpl, err := ParseMerchantCode(sampleMerchantQR, "shop-7")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, func(c *Config) { c.MerchantCode = tmpl })
	defer h.stop()
	if _, err := h.e.Present(context.Background(), 500, "JPY"); !errors.Is(err, ErrCurrencyNotAccepted) {
		t.Fatalf("Present in JPY with a KRW template: %v", err)
	}
	if ob := h.outbox(); len(ob) != 0 {
		t.Fatalf("outbox after a refused currency: %v", ob)
	}
	if st, _ := h.e.Stats(context.Background()); st.Waiting != "" {
		t.Fatalf("stats %+v", st)
	}
	s, err := h.e.Present(context.Background(), 500, "KRW")
	if err != nil || s.Scheme != "emvco" || s.QR == "" {
		t.Fatalf("Present in KRW = %+v, %v", s, err)
	}
}

// FuzzParseMerchantCode: the configured payload is outside bytes. ParseMerchantCode
// never panics, and every template it accepts yields dynamic codes that paycode
// decodes with the sale's amount and reference.
func FuzzParseMerchantCode(f *testing.F) {
	f.Add(sampleMerchantQR, "shop-7")
	f.Add("00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A", "")
	f.Add("281234567890123456", "x")
	f.Add("hQVDUFYwMQ==", "")
	f.Fuzz(func(t *testing.T, payload, terminal string) {
		m, err := ParseMerchantCode(payload, terminal)
		if err != nil {
			if m != nil {
				t.Fatal("template returned with an error")
			}
			return
		}
		cur, ok := paycode.LookupCurrency(m.Currency)
		if !ok {
			t.Fatalf("accepted a template with currency %q", m.Currency)
		}
		for _, amount := range []int64{1, 4500, 99_999_999} {
			qr, err := PresentCode(m, amount, cur.Code, "0123456789ABCDEFGHIJKLMNO")
			if err != nil {
				t.Fatalf("accepted template cannot build a code for %d: %v", amount, err)
			}
			d, _, err := paycode.Decode(qr)
			if err != nil {
				t.Fatalf("built code does not decode: %v", err)
			}
			if got, ok := d.AmountMinor(); !ok || got != amount || !d.Dynamic() {
				t.Fatalf("built code amount %d %v dynamic %v, want %d", got, ok, d.Dynamic(), amount)
			}
			if ref, _ := d.AdditionalField(paycode.AddReferenceLabel); ref != "0123456789ABCDEFGHIJKLMNO" {
				t.Fatalf("reference %q", ref)
			}
		}
	})
}
