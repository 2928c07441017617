package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/walletless/walletless/broker"
)

func (tp *thinPath) metrics(token string) (int, string) {
	tp.t.Helper()
	req, _ := http.NewRequest("GET", tp.api+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetrics scrapes /metrics after two sales: the counters move, every metric the
// operations doc lists is there, and only a manager token may read them.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, stopGateway := runGateway(t, b.URL(), dir)
	defer stopGateway()
	tp := startThinPath(t, dir, b.URL())
	defer tp.shutdown()

	if m := tp.sale(12000, "KRW", "281234567890123456"); m["status"] != "approved" {
		t.Fatalf("sale %v", m)
	}
	if m := tp.sale(500, "KRW", "hello-not-a-code"); m["status"] != "declined" {
		t.Fatalf("sale %v", m)
	}
	code, body := tp.metrics(tp.info.Token)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", code, body)
	}
	for _, want := range []string{
		`walletless_sales_total{status="approved"} 1`,
		`walletless_sales_total{status="declined"} 1`,
		`walletless_sales_open{state="in_doubt"} 0`,
		"walletless_outbox_depth ",
		"walletless_oldest_unsynced_age_seconds ",
		"walletless_mqtt_connects_total 1",
		"walletless_mqtt_reconnects_total 0",
		"walletless_decode_seconds_count 2",
		"walletless_commit_seconds_count 2",
		"walletless_printer_failures_total 0",
		"walletless_scanner_connected 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "281234567890123456") || strings.Contains(body, tp.info.Token) {
		t.Error("metrics show a payment code or the token")
	}
	if code, _ := tp.metrics(""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	_, m := tp.do("POST", "/v1/tokens", `{"name": "till", "role": "clerk"}`)
	clerk, _ := m["token"].(string)
	if clerk == "" {
		t.Fatalf("no clerk token: %v", m)
	}
	if code, _ := tp.metrics(clerk); code != http.StatusForbidden {
		t.Errorf("clerk token: %d, want 403", code)
	}
}
