package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/walletless/walletless/config"
)

// TestConfigReachesTheEngine checks that configuration set by a technician takes
// effect: a custom wallet rule table, and a "defer" offline policy for that scheme
// while no broker can be reached.
func TestConfigReachesTheEngine(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkNoLeftovers(t, before)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.json")
	os.WriteFile(rules, []byte(`{"version": "test-1", "wallets": [
	  {"scheme": "shoppoints", "operator": "Shop Points Inc.", "prefixes": [[77, 77]], "min_len": 12, "max_len": 12, "basis": "guessed", "source": "test"}
	]}`), 0o600)
	// A broker address where nothing listens: the terminal is offline.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "tcp://" + ln.Addr().String()
	ln.Close()

	tp := startThinPathWith(t, dir, dead, func(c *config.Config) {
		c.Payment.RulesFile = rules
		c.Payment.OfflineAfter = config.Duration(time.Second)
		c.Payment.Offline.ByScheme = map[string]config.OfflinePolicy{
			"shoppoints": {Action: "defer", MaxAmountMinor: map[string]int64{"KRW": 50_000}, MaxTotalMinor: map[string]int64{"KRW": 200_000}, MaxCount: 10},
		}
	})
	defer tp.shutdown()
	time.Sleep(1500 * time.Millisecond) // past offline_after: the link never came up

	// The custom rule identifies the code; the defer policy stores it offline.
	_, m := tp.do("POST", "/v1/sales", `{"amount_minor": 3000, "currency": "KRW"}`)
	id := m["id"].(string)
	fmt.Fprintln(tp.scan, "771234567890")
	got := tp.waitField("/v1/sales/"+id, "status", "stored_offline", "refused", "declined")
	if got["status"] != "stored_offline" || got["scheme"] != "shoppoints" {
		t.Fatalf("custom scheme offline: %v", got)
	}
	// Alipay is not in the custom table any more: it declines as unrecognised.
	_, m = tp.do("POST", "/v1/sales", `{"amount_minor": 3000, "currency": "KRW"}`)
	id = m["id"].(string)
	fmt.Fprintln(tp.scan, "281234567890123456")
	got = tp.waitField("/v1/sales/"+id, "status", "stored_offline", "refused", "declined")
	if got["status"] != "declined" {
		t.Fatalf("alipay with a custom table: %v", got)
	}
}

func TestBadConfigStopsPosdClearly(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Printer.Profile = "no-such-printer"
	if err := Run(t.Context(), Options{Config: cfg}); err == nil {
		t.Fatal("unknown printer profile accepted")
	}
	cfg.Printer.Profile = "epson-80"
	cfg.Payment.RulesFile = filepath.Join(t.TempDir(), "missing.json")
	if err := Run(t.Context(), Options{Config: cfg}); err == nil {
		t.Fatal("missing rules file accepted")
	}
}
