package daemon

import (
	"fmt"
	"math/big"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/wirecheck"
	"github.com/walletless/walletless/paycode"
)

// sampleMerchantQR is the static KRW code of deploy/posd.example.json: a made-up
// acquirer (com.example.acquirer), merchant SAMPLE-MERCHANT-0001, store label SHOP7.
const sampleMerchantQR = "00020101021126480020com.example.acquirer0120SAMPLE-MERCHANT-00015204541153034105802KR5918SEOUL CORNER STORE6005SEOUL62090305SHOP76304CBD5"

// wantReference is the reference label (62.05) of sale id: its 128 bits in base 36,
// upper case, 25 characters (docs/sales.md).
func wantReference(t *testing.T, id string) string {
	t.Helper()
	n, ok := new(big.Int).SetString(strings.ReplaceAll(id, "-", ""), 16)
	if !ok {
		t.Fatalf("sale id %q is not hex", id)
	}
	s := strings.ToUpper(n.Text(36))
	return strings.Repeat("0", 25-len(s)) + s
}

// TestMerchantQRConfigured runs posd outside the demo with merchant.emv_qr set, posgw
// in-process on an embedded broker: a merchant-presented sale answers 201 with a
// dynamic code built from the merchant's QR, the slip is printed, posgw approves it;
// a sale in another currency than the QR's is refused and leaves nothing behind.
func TestMerchantQRConfigured(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkNoLeftovers(t, before)
	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	defer b.Close()
	ledger, stopGateway := runGateway(t, b.URL(), dir)
	defer stopGateway()
	tp := startThinPathWith(t, dir, b.URL(), func(c *config.Config) { c.Merchant.EMVQR = sampleMerchantQR })

	// Another currency than the QR's 410 (KRW): 400, nothing stored or sent.
	_, stBefore := tp.do("GET", "/v1/status", "")
	code, m := tp.do("POST", "/v1/sales", `{"amount_minor": 500, "currency": "JPY", "flow": "merchant_presented"}`)
	if code != http.StatusBadRequest || !strings.Contains(m["error"].(string), "KRW only") {
		t.Fatalf("JPY against a KRW merchant QR: %d %v", code, m)
	}
	_, stAfter := tp.do("GET", "/v1/status", "")
	if stAfter["outbox_depth"] != stBefore["outbox_depth"] || stAfter["outbox_depth"] != float64(0) {
		t.Fatalf("outbox after a refused currency: %v, before %v", stAfter["outbox_depth"], stBefore["outbox_depth"])
	}

	code, m = tp.do("POST", "/v1/sales", `{"amount_minor": 4500, "currency": "KRW", "flow": "merchant_presented"}`)
	if code != http.StatusCreated || m["status"] != "authorizing" || m["flow"] != "merchant_presented" {
		t.Fatalf("merchant-presented sale: %d %v", code, m)
	}
	id := m["id"].(string)
	qr, _ := m["qr"].(string)
	got, _, err := paycode.Decode(qr) // checks the CRC too
	if err != nil {
		t.Fatalf("qr does not decode: %v", err)
	}
	tmpl, _, _ := paycode.Decode(sampleMerchantQR)
	if !got.Dynamic() || got.Amount != "4500" || got.Currency != "410" {
		t.Errorf("qr: initiation %q amount %q currency %q", got.PointOfInitiation, got.Amount, got.Currency)
	}
	if len(got.MerchantAccounts) != 1 || got.MerchantAccounts[0].GUI != "com.example.acquirer" ||
		len(got.MerchantAccounts[0].Fields) != 1 || got.MerchantAccounts[0].Fields[0] != tmpl.MerchantAccounts[0].Fields[0] {
		t.Errorf("qr merchant accounts %+v", got.MerchantAccounts)
	}
	if got.MCC != "5411" || got.Country != "KR" || got.MerchantName != "SEOUL CORNER STORE" || got.MerchantCity != "SEOUL" {
		t.Errorf("qr merchant %+v", got)
	}
	ref, _ := got.AdditionalField(paycode.AddReferenceLabel)
	term, _ := got.AdditionalField(paycode.AddTerminalLabel)
	store, _ := got.AdditionalField(paycode.AddStoreLabel)
	if ref != wantReference(t, id) || term != "shop-7" || store != "SHOP7" {
		t.Errorf("qr additional data %+v (sale %s)", got.Additional, id)
	}
	if s := tp.waitFinal(id); s["status"] != "approved" || s["qr"] != nil {
		t.Fatalf("sale ended %v", s)
	}
	// The slip with the QR, then the receipt.
	waitFile(t, filepath.Join(dir, "receipts", id+"-qr.png"))
	waitFile(t, filepath.Join(dir, "receipts", id+".png"))
	tp.shutdown()

	var entries []gateway.Entry
	ledger.ForEach(func(e gateway.Entry) error { entries = append(entries, e); return nil })
	if len(entries) != 1 || entries[0].Key != id || entries[0].AmountMinor != 4500 || entries[0].Currency != "KRW" {
		t.Fatalf("ledger %+v, want only sale %s", entries, id)
	}
	if strings.Contains(entries[0].MaskedCode, "SAMPLE-MERCHANT") {
		t.Errorf("ledger keeps the code unmasked: %q", entries[0].MaskedCode)
	}
}

// TestMerchantQRMissing: outside the demo, without merchant.emv_qr, the flow answers
// 409 and says which key to set.
func TestMerchantQRMissing(t *testing.T) {
	tp := startThinPathWith(t, t.TempDir(), "tcp://127.0.0.1:1", nil)
	defer tp.shutdown()
	code, m := tp.do("POST", "/v1/sales", `{"amount_minor": 4500, "currency": "KRW", "flow": "merchant_presented"}`)
	if code != http.StatusConflict || !strings.Contains(m["error"].(string), "merchant.emv_qr") {
		t.Fatalf("without merchant.emv_qr: %d %v", code, m)
	}
}

// TestBadMerchantQRStopsPosd: a merchant.emv_qr posd cannot use stops it at startup
// with an error naming the key and the problem.
func TestBadMerchantQRStopsPosd(t *testing.T) {
	noCRC := sampleMerchantQR[:len(sampleMerchantQR)-4]
	body := strings.Replace(noCRC[:len(noCRC)-4], "5303410", "5303410540512000", 1) + "6304"
	withAmount := body + fmt.Sprintf("%04X", paycode.CRC16(body))
	for payload, want := range map[string]string{
		noCRC + "0000":                   "checksum",
		withAmount:                       "fixed amount",
		"000201010211520454115303410633": "malformed",
		"hQVDUFYwMQ==":                   "not an EMVCo merchant-presented QR", // config's shape check
	} {
		for _, demo := range []bool{false, true} {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.API.Addr = "127.0.0.1:0"
			cfg.Merchant.EMVQR = payload
			err := Run(t.Context(), Options{Config: cfg, Demo: demo})
			if err == nil || !strings.Contains(err.Error(), "merchant.emv_qr") || !strings.Contains(err.Error(), want) {
				t.Errorf("demo %v, emv_qr %.20s…: %v, want an error naming merchant.emv_qr and %q", demo, payload, err, want)
			}
		}
	}
}

// TestPresentTimeoutGoesInDoubt: with posgw absent, a merchant-presented sale not
// reported paid within payment.present_timeout goes in doubt.
func TestPresentTimeoutGoesInDoubt(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkNoLeftovers(t, before)
	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	defer b.Close()
	tp := startThinPathWith(t, dir, b.URL(), func(c *config.Config) {
		c.Merchant.EMVQR = sampleMerchantQR
		c.Payment.PresentTimeout = config.Duration(time.Second)
	})
	defer tp.shutdown()
	code, m := tp.do("POST", "/v1/sales", `{"amount_minor": 4500, "currency": "KRW", "flow": "merchant_presented"}`)
	if code != http.StatusCreated || m["status"] != "authorizing" {
		t.Fatalf("merchant-presented sale: %d %v", code, m)
	}
	tp.waitField("/v1/sales/"+m["id"].(string), "status", "in_doubt")
}

// TestMerchantCodeSettings: merchant.emv_qr is the template, in the demo too; without
// it the demo has its made-up merchant and posd has none.
func TestMerchantCodeSettings(t *testing.T) {
	cfg := config.Default()
	cfg.DeviceID = "shop-7"
	cfg.Payment.PresentTimeout = config.Duration(90 * time.Second)
	for _, tc := range []struct {
		qr   string
		demo bool
		want string // GUI of the first merchant account; "" for no template
	}{
		{"", false, ""},
		{"", true, "com.walletless.demo"},
		{sampleMerchantQR, false, "com.example.acquirer"},
		{sampleMerchantQR, true, "com.example.acquirer"},
	} {
		cfg.Merchant.EMVQR = tc.qr
		ps, err := paymentSettingsFrom(cfg, tc.demo)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if ps.MerchantCode != nil {
			got = ps.MerchantCode.MerchantAccounts[0].GUI
		}
		if got != tc.want || ps.PresentTimeout != 90*time.Second {
			t.Errorf("emv_qr set %v, demo %v: template %q, present timeout %s; want %q, 1m30s", tc.qr != "", tc.demo, got, ps.PresentTimeout, tc.want)
		}
	}
}

// TestExampleMerchantQR: the sample payload of deploy/posd.example.json is one posd
// starts with.
func TestExampleMerchantQR(t *testing.T) {
	cfg, err := config.Load("../deploy/posd.example.json")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := paymentSettingsFrom(cfg, false)
	if err != nil || ps.MerchantCode == nil || cfg.Merchant.EMVQR != sampleMerchantQR {
		t.Fatalf("example merchant.emv_qr: %v", err)
	}
}
