package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/wirecheck"
	"github.com/walletless/walletless/payment"
)

// thinPath runs posd against an embedded broker and an in-process posgw.
type thinPath struct {
	t       *testing.T
	api     string
	info    Info // as Ready reported it; info.Token is the admin (manager) token
	scan    *io.PipeWriter
	dir     string
	ledger  *gateway.Ledger
	stop    context.CancelFunc
	done    chan error
	brokerU string
}

func startThinPath(t *testing.T, dir string, brokerURL string) *thinPath {
	t.Helper()
	return startThinPathWith(t, dir, brokerURL, nil)
}

// startThinPathWith is startThinPath with a hook that adjusts the configuration.
func startThinPathWith(t *testing.T, dir string, brokerURL string, adjust func(*config.Config)) *thinPath {
	t.Helper()
	return startPosd(t, dir, brokerURL, false, adjust)
}

// startPosd runs posd (in demo mode when demo is set) with the test configuration.
func startPosd(t *testing.T, dir string, brokerURL string, demo bool, adjust func(*config.Config)) *thinPath {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "posd")
	cfg.API.Addr = "127.0.0.1:0"
	cfg.MQTT.Broker = brokerURL
	cfg.DeviceID = "shop-7"
	cfg.Scanner.Source = "stdin"
	cfg.Scanner.Dedup = 0
	cfg.Printer.Target = "emulator:" + filepath.Join(dir, "receipts")
	if adjust != nil {
		adjust(&cfg)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	tp := &thinPath{t: t, scan: pw, dir: dir, stop: cancel, done: make(chan error, 1), brokerU: brokerURL}
	go func() {
		tp.done <- Run(ctx, Options{Config: cfg, Demo: demo, Stdin: pr, Version: "test", Ready: func(i Info) { ready <- i }})
	}()
	select {
	case i := <-ready:
		tp.api, tp.info = i.APIURL, i
	case err := <-tp.done:
		t.Fatalf("posd did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("posd did not become ready")
	}
	return tp
}

func (tp *thinPath) shutdown() {
	tp.stop()
	tp.scan.Close()
	select {
	case err := <-tp.done:
		if err != nil {
			tp.t.Errorf("posd stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		tp.t.Error("posd did not stop within 20s")
	}
}

func (tp *thinPath) do(method, path, body string) (int, map[string]any) {
	tp.t.Helper()
	req, _ := http.NewRequest(method, tp.api+path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tp.info.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		tp.t.Fatalf("%s %s: non-JSON answer: %v", method, path, err)
	}
	return resp.StatusCode, m
}

// waitStatus polls the sale until it leaves the given transient statuses.
func (tp *thinPath) waitFinal(id string) map[string]any {
	tp.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, m := tp.do("GET", "/v1/sales/"+id, "")
		switch m["status"] {
		case "approved", "declined", "cancelled", "refused", "reversal_pending", "reversed", "reversal_failed":
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	tp.t.Fatalf("sale %s did not finish", id)
	return nil
}

func (tp *thinPath) sale(amount int64, currency, code string) map[string]any {
	tp.t.Helper()
	code201, m := tp.do("POST", "/v1/sales", fmt.Sprintf(`{"amount_minor": %d, "currency": %q}`, amount, currency))
	if code201 != http.StatusCreated || m["status"] != "waiting_for_code" {
		tp.t.Fatalf("create sale: %d %v", code201, m)
	}
	if _, err := fmt.Fprintln(tp.scan, code); err != nil {
		tp.t.Fatal(err)
	}
	return tp.waitFinal(m["id"].(string))
}

// runGateway runs posgw and returns a stop function that waits for it to finish: stop
// it before closing the broker (paho's Disconnect blocks while it reconnects to a
// broker that is gone).
func runGateway(t *testing.T, brokerURL, dir string) (*gateway.Ledger, func()) {
	t.Helper()
	ledger, err := gateway.OpenLedger(filepath.Join(dir, "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	gw, err := gateway.New(gateway.Config{BrokerURL: brokerURL, Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gw.Run(ctx); close(done) }()
	return ledger, func() { cancel(); <-done }
}

func TestThinPathEmbeddedBroker(t *testing.T) {
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

	tp := startThinPath(t, dir, b.URL())

	// Approved: an Alipay code within posgw's limit.
	m := tp.sale(12000, "KRW", "281234567890123456")
	if m["status"] != "approved" || m["scheme"] != "alipay" || m["amount_minor"] != float64(12000) || m["currency"] != "KRW" {
		t.Fatalf("approved sale = %v", m)
	}
	masked, _ := m["masked_code"].(string)
	if masked == "" || bytes.Contains([]byte(masked), []byte("2812345678")) {
		t.Fatalf("masked_code %q is missing or shows the code", masked)
	}
	id := m["id"].(string)

	// Declined by posgw: above the limit, with its reason.
	m = tp.sale(2_000_000, "KRW", "134567890123456789")
	if m["status"] != "declined" || m["scheme"] != "wechatpay" || m["reason"] == "" {
		t.Fatalf("over-limit sale = %v", m)
	}

	// Declined locally: an unidentified code never reaches the network.
	m = tp.sale(500, "KRW", "hello-not-a-code")
	if m["status"] != "declined" || m["reason"] == "" {
		t.Fatalf("unknown-code sale = %v", m)
	}

	// Bad requests get 4xx and JSON errors.
	for _, body := range []string{`{"amount_minor": -5, "currency": "KRW"}`, `{"amount_minor": 5, "currency": "XXX"}`, `{"amount_minor": 5}`, `{"amount_minor": 1.5, "currency": "KRW"}`, `{"amount_minor": 5, "currency": "KRW", "x": 1}`, `nope`} {
		code, m := tp.do("POST", "/v1/sales", body)
		if code != http.StatusBadRequest || m["error"] == "" {
			t.Errorf("POST %s = %d %v, want 400 with error", body, code, m)
		}
	}
	if code, _ := tp.do("GET", "/v1/sales/0190b7a4-0000-7000-8000-000000000000", ""); code != http.StatusNotFound {
		t.Errorf("unknown sale: %d", code)
	}
	// Only one sale waits for a code; cancel frees the counter.
	_, w := tp.do("POST", "/v1/sales", `{"amount_minor": 100, "currency": "JPY"}`)
	if code, _ := tp.do("POST", "/v1/sales", `{"amount_minor": 100, "currency": "JPY"}`); code != http.StatusConflict {
		t.Errorf("second waiting sale: %d, want 409", code)
	}
	if code, c := tp.do("POST", "/v1/sales/"+w["id"].(string)+"/cancel", ""); code != 200 || c["status"] != "cancelled" {
		t.Errorf("cancel: %d %v", code, c)
	}

	// The receipt of the approved sale was rendered.
	waitFile(t, filepath.Join(dir, "receipts", id+".png"))

	// A reprint renders the receipt again; unknown sales are 404.
	os.Remove(filepath.Join(dir, "receipts", id+".png"))
	if code, m := tp.do("POST", "/v1/sales/"+id+"/reprint", ""); code != http.StatusAccepted {
		t.Fatalf("reprint: %d %v", code, m)
	}
	waitFile(t, filepath.Join(dir, "receipts", id+".png"))
	if code, _ := tp.do("POST", "/v1/sales/0190b7a4-0000-7000-8000-000000000000/reprint", ""); code != http.StatusNotFound {
		t.Errorf("reprint of an unknown sale: %d", code)
	}

	tp.shutdown()

	// The ledger holds each network sale exactly once.
	var n int
	ledger.ForEach(func(e gateway.Entry) error {
		n++
		if e.Device != "shop-7" {
			t.Errorf("ledger device %q", e.Device)
		}
		return nil
	})
	if n != 2 {
		t.Errorf("ledger has %d entries, want 2", n)
	}

	// After a restart the sales are still there, final.
	tp = startThinPath(t, dir, b.URL())
	if _, m := tp.do("GET", "/v1/sales/"+id, ""); m["status"] != string(payment.StatusApproved) {
		t.Errorf("after restart: %v", m)
	}
	tp.shutdown()
}

// checkNoLeftovers fails when goroutines started by the test outlive it.
func checkNoLeftovers(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left behind (before: %d):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s was not written", path)
}

// TestNoPrinter: with printer.target "none" a finished sale encodes no receipt and a
// reprint answers 501, saying there is no printer.
func TestNoPrinter(t *testing.T) {
	tp := startThinPathWith(t, t.TempDir(), "tcp://127.0.0.1:1", func(c *config.Config) { c.Printer.Target = "none" })
	defer tp.shutdown()
	m := tp.sale(500, "KRW", "hello-not-a-code") // declined locally: no network needed
	if m["status"] != "declined" {
		t.Fatalf("sale = %v", m)
	}
	code, r := tp.do("POST", "/v1/sales/"+m["id"].(string)+"/reprint", "")
	if code != http.StatusNotImplemented || r["error"] == "" {
		t.Errorf("reprint without a printer: %d %v", code, r)
	}
}

// TestDemoStartupErrorReturns: a configuration error found after the demo's broker
// and posgw started (an unknown printer profile) stops them and returns the error; it
// used to hang in the broker's Close while posgw stayed connected.
func TestDemoStartupErrorReturns(t *testing.T) {
	// The hang needed posgw to be connecting when the error came: try a few times.
	for i := 0; i < 20; i++ {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.API.Addr = "127.0.0.1:0"
		cfg.Printer.Profile = "no-such-profile"
		done := make(chan error, 1)
		go func() {
			done <- Run(context.Background(), Options{Config: cfg, Demo: true, Stdin: strings.NewReader("")})
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "printer.profile") {
				t.Fatalf("Run = %v, want the printer.profile error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("run %d: Run did not return within 30s after a startup error in demo mode", i)
		}
	}
}
