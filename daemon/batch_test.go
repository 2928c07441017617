package daemon

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/wirecheck"
)

// TestBatchCloseWaitsForSaleInFlight: a sale is authorizing (posgw is not running yet)
// when the clerk closes the batch: the close answers 409 and changes nothing. Once
// posgw approves the sale the close succeeds, and posgw, reconciling by the batch id
// the sale's request carried, records the batch without a mismatch. A sale made after
// the close belongs to the next batch on both sides.
func TestBatchCloseWaitsForSaleInFlight(t *testing.T) {
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
		// The sale must stay authorizing (not go in doubt) while posgw is away.
		c.Payment.AuthTimeout = config.Duration(10 * time.Minute)
		// The first request reaches no posgw (the broker drops it); the resend does.
		c.MQTT.ResendAfter = config.Duration(time.Second)
	})
	defer tp.shutdown()

	_, a := tp.do("GET", "/v1/batches/current", "")
	batchA := a["id"].(string)
	code, m := tp.do("POST", "/v1/sales", `{"amount_minor": 12000, "currency": "KRW"}`)
	if code != http.StatusCreated || m["batch_id"] != batchA {
		t.Fatalf("create: %d %v", code, m)
	}
	id := m["id"].(string)
	if code, m := tp.do("POST", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`); code != http.StatusOK || m["status"] != "authorizing" {
		t.Fatalf("code: %d %v", code, m)
	}

	code, m = tp.do("POST", "/v1/batches/close", "")
	if code != http.StatusConflict || !strings.Contains(m["error"].(string), "1 sale of this batch is still authorizing") {
		t.Fatalf("close with a sale in flight: %d %v", code, m)
	}
	if _, cur := tp.do("GET", "/v1/batches/current", ""); cur["id"] != batchA || cur["status"] != "open" {
		t.Fatalf("refused close changed the open batch: %v", cur)
	}

	ledger, stopGateway := runGateway(t, b.URL(), dir)
	defer stopGateway()
	if s := tp.waitFinal(id); s["status"] != "approved" || s["batch_id"] != batchA {
		t.Fatalf("sale %v", s)
	}
	code, m = tp.do("POST", "/v1/batches/close", "")
	if code != http.StatusOK || m["id"] != batchA || !strings.Contains(m["report"].(string), "NET KRW 12000") {
		t.Fatalf("close: %d %v", code, m)
	}
	closed := tp.waitField("/v1/batches/"+batchA, "synced", "true")
	if mm, ok := closed["mismatch"]; ok {
		t.Fatalf("batch mismatch: %v", mm)
	}

	// A sale after the close belongs to the next batch.
	_, nb := tp.do("GET", "/v1/batches/current", "")
	late := tp.sale(3000, "KRW", "281234567890123457")
	if late["status"] != "approved" || late["batch_id"] != nb["id"] || nb["id"] == batchA {
		t.Fatalf("sale after the close: %v (open batch %v)", late, nb["id"])
	}

	var status, reason string
	var batches []string
	ledger.ForEachBatch(func(b gateway.Batch) error {
		if b.Key == batchA {
			status, reason = b.Status, b.Reason
		}
		return nil
	})
	ledger.ForEach(func(e gateway.Entry) error {
		batches = append(batches, e.Key+"="+e.Batch)
		return nil
	})
	if status != "recorded" {
		t.Fatalf("posgw's batch: %q %q", status, reason)
	}
	want := []string{id + "=" + batchA, late["id"].(string) + "=" + nb["id"].(string)}
	if strings.Join(batches, ",") != strings.Join(want, ",") {
		t.Fatalf("ledger batches %v, want %v", batches, want)
	}
}
