package daemon

import (
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/wirecheck"
	"github.com/walletless/walletless/paycode"
)

// waitField polls path until field has one of the wanted values.
func (tp *thinPath) waitField(path, field string, want ...string) map[string]any {
	tp.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var m map[string]any
	for time.Now().Before(deadline) {
		_, m = tp.do("GET", path, "")
		for _, w := range want {
			if v, _ := m[field].(string); v == w {
				return m
			}
			if b, ok := m[field].(bool); ok && w == "true" && b {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tp.t.Fatalf("%s: %s never became %v: %v", path, field, want, m)
	return nil
}

// TestRefundAndBatchThroughTheGateway drives a sale through the API's code endpoint
// (as a cash register with its own scanner does), refunds part of it, closes the batch
// and checks that every message reached posgw and was answered.
func TestRefundAndBatchThroughTheGateway(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkNoLeftovers(t, before)
	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	defer b.Close()
	_, stopGateway := runGateway(t, b.URL(), dir)
	defer stopGateway()
	tp := startThinPath(t, dir, b.URL())

	code, m := tp.do("POST", "/v1/sales", `{"amount_minor": 12000, "currency": "KRW"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, m)
	}
	id := m["id"].(string)
	code, m = tp.do("POST", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`)
	if code != http.StatusOK || m["status"] != "authorizing" {
		t.Fatalf("code: %d %v", code, m)
	}
	tp.waitFinal(id)

	// The same one-time code again is refused with a clear error.
	_, w := tp.do("POST", "/v1/sales", `{"amount_minor": 500, "currency": "KRW"}`)
	if code, m := tp.do("POST", "/v1/sales/"+w["id"].(string)+"/code", `{"code": "281234567890123456"}`); code != http.StatusConflict || !strings.Contains(m["error"].(string), "already used") {
		t.Fatalf("reused code: %d %v", code, m)
	}
	tp.do("POST", "/v1/sales/"+w["id"].(string)+"/cancel", "")

	code, m = tp.do("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 2000}`)
	if code != http.StatusCreated {
		t.Fatalf("refund: %d %v", code, m)
	}
	rid := m["id"].(string)
	if code, m := tp.do("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 10001}`); code != http.StatusBadRequest {
		t.Fatalf("refund above the original: %d %v", code, m)
	}
	tp.waitField("/v1/refunds/"+rid, "status", "approved")

	code, m = tp.do("POST", "/v1/batches/close", "")
	if code != http.StatusOK || !strings.Contains(m["report"].(string), "NET KRW 10000") {
		t.Fatalf("close: %d %v", code, m)
	}
	bid := m["id"].(string)
	tp.waitField("/v1/batches/"+bid, "synced", "true")
	tp.waitField("/v1/sales/"+w["id"].(string), "synced", "true") // the cancelled attempt was recorded
	tp.shutdown()
}

// TestMerchantPresentedDemo runs posd in demo mode (embedded broker and posgw, a
// made-up merchant account) and pays a merchant-presented sale: the answer carries
// the dynamic QR, and posgw's approval settles it.
func TestMerchantPresentedDemo(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkNoLeftovers(t, before)
	dir := t.TempDir()
	tp := startPosd(t, dir, config.Default().MQTT.Broker, true, func(c *config.Config) { c.DeviceID = "demo-9"; c.Scanner.Dedup = config.Default().Scanner.Dedup })
	defer tp.shutdown()
	code, m := tp.do("POST", "/v1/sales", `{"amount_minor": 4500, "currency": "KRW", "flow": "merchant_presented"}`)
	if code != http.StatusCreated || m["status"] != "authorizing" || !strings.HasPrefix(m["qr"].(string), "000201010212") {
		t.Fatalf("merchant-presented sale: %d %v", code, m)
	}
	if _, _, err := paycode.Decode(m["qr"].(string)); err != nil {
		t.Fatalf("QR does not decode: %v", err)
	}
	if got := tp.waitFinal(m["id"].(string)); got["status"] != "approved" || got["qr"] != nil {
		t.Fatalf("merchant-presented sale ended %v", got)
	}
	// The slip with the QR and then the receipt were printed.
	waitFile(t, filepath.Join(dir, "receipts", m["id"].(string)+"-qr.png"))
	waitFile(t, filepath.Join(dir, "receipts", m["id"].(string)+".png"))
}
