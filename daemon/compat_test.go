package daemon

import (
	"net/http"
	"runtime"
	"testing"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/internal/minicloud"
	"github.com/walletless/walletless/internal/wirecheck"
)

// TestPosdSyncsWithAnOldDocumentCloud: a cloud written to docs/protocol.md as it
// was before this version of v1 (a persistent session, no staleness rule, refusing
// fields it does not know, so also the new offline field) still works with this posd
// (docs/protocol.md, "Compatibility"): an approved sale, a declined one, a refund
// and a batch close all sync and reconcile, and a cancelled sale's attempt is
// recorded.
func TestPosdSyncsWithAnOldDocumentCloud(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkNoLeftovers(t, before)
	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	defer b.Close()
	cloud, err := minicloud.Start(minicloud.Config{BrokerURL: b.URL(), Flaws: minicloud.OldDocument})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Stop()
	tp := startThinPath(t, dir, b.URL())
	defer tp.shutdown()

	ok := tp.sale(12000, "KRW", "281234567890123456")
	if ok["status"] != "approved" {
		t.Fatalf("sale through the old cloud: %v", ok)
	}
	if no := tp.sale(2_000_000, "KRW", "281234567890123457"); no["status"] != "declined" {
		t.Fatalf("over-limit sale through the old cloud: %v", no)
	}
	code, r := tp.do("POST", "/v1/sales/"+ok["id"].(string)+"/refunds", `{"amount_minor": 2000}`)
	if code != http.StatusCreated {
		t.Fatalf("refund: %d %v", code, r)
	}
	tp.waitField("/v1/refunds/"+r["id"].(string), "status", "approved")
	_, w := tp.do("POST", "/v1/sales", `{"amount_minor": 500, "currency": "KRW"}`)
	tp.do("POST", "/v1/sales/"+w["id"].(string)+"/cancel", "")
	code, m := tp.do("POST", "/v1/batches/close", "")
	if code != http.StatusOK {
		t.Fatalf("close: %d %v", code, m)
	}
	closed := tp.waitField("/v1/batches/"+m["id"].(string), "synced", "true")
	if mm, ok := closed["mismatch"]; ok {
		t.Fatalf("the old cloud reconciled the batch with a mismatch: %v", mm)
	}
	tp.waitField("/v1/sales/"+w["id"].(string), "synced", "true") // the cancelled attempt was recorded
}
