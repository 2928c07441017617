package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/fleet"
	"github.com/walletless/walletless/internal/apispec"
	"github.com/walletless/walletless/payment"
)

func loadSpec(t *testing.T) *apispec.Spec {
	t.Helper()
	spec, err := apispec.Load(filepath.Join("..", "docs", "api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestEveryRouteIsDocumented: docs/api.yaml lists exactly the endpoints the server
// routes (plus sign-in, which the guard answers itself).
func TestEveryRouteIsDocumented(t *testing.T) {
	spec := loadSpec(t)
	s := New(nil, nil, nil)
	routed := []string{"POST /v1/session"}
	for _, rt := range s.allRoutes() {
		routed = append(routed, rt.pattern)
	}
	slices.Sort(routed)
	documented := spec.Operations()
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is routed but not in docs/api.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("%s is in docs/api.yaml but not routed", d)
		}
	}
}

// TestAnswersMatchTheDocument sends real requests through the whole API and checks
// every answer (status, media type, JSON body) against docs/api.yaml.
func TestAnswersMatchTheDocument(t *testing.T) {
	spec := loadSpec(t)
	f := newFixture(t)
	withKeys(t, f)
	f.s.Sessions = &auth.Sessions{}
	pins, _ := auth.OpenPINs(filepath.Join(t.TempDir(), "pins.json"))
	f.s.PINs = pins
	f.s.Reprint = func(string) error { return nil }
	f.s.Waiting = f.e.Waiting
	var made []payment.Sale
	f.s.ListSales = func(from, to time.Time) ([]payment.Sale, error) { return made, nil }
	check := func(method, template, path, body string, headers ...string) map[string]any {
		t.Helper()
		hdr := append([]string{"Authorization", "Bearer " + f.manager, "Content-Type", "application/json"}, headers...)
		code, m, raw := f.doWith(method, path, body, hdr...)
		mt := "application/json"
		if strings.HasSuffix(path, "qr.png") || strings.Contains(path, "format=text") {
			mt = "" // checked below by content type
		}
		if mt != "" {
			if err := spec.Check(method, template, code, mt, []byte(raw)); err != nil {
				t.Error(err)
			}
		}
		return m
	}
	// GET /v1/status is checked against a real posd in package daemon.
	sale := check("POST", "/v1/sales", "/v1/sales", `{"amount_minor": 12000, "currency": "KRW", "ecr_ref": "R-1"}`)
	id := sale["id"].(string)
	check("POST", "/v1/sales", "/v1/sales", `{"amount_minor": 12000, "currency": "KRW", "ecr_ref": "R-1"}`)
	check("POST", "/v1/sales", "/v1/sales", `{"amount_minor": 12000, "currency": "KRW"}`) // 409: one waits
	check("POST", "/v1/sales", "/v1/sales", `{"amount_minor": -1, "currency": "KRW"}`)
	check("GET", "/v1/sales/{id}", "/v1/sales/"+id, "")
	check("GET", "/v1/ecr/{ref}", "/v1/ecr/R-1", "")
	check("GET", "/v1/ecr/{ref}", "/v1/ecr/nope", "")
	check("GET", "/v1/sales/{id}/qr.png", "/v1/sales/"+id+"/qr.png", "")
	check("POST", "/v1/sales/{id}/code", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`)
	check("POST", "/v1/abort", "/v1/abort", `{}`)
	f.e.HandleResult(context.Background(), payment.Result{Key: id, Status: payment.ResultApproved})
	s, _ := f.e.Get(id)
	made = append(made, s)
	check("GET", "/v1/sales", "/v1/sales", "")
	check("GET", "/v1/sales", "/v1/sales?date=nope", "")
	check("POST", "/v1/sales/{id}/reprint", "/v1/sales/"+id+"/reprint", "")
	check("POST", "/v1/receipts/last/print", "/v1/receipts/last/print", "")
	ref := check("POST", "/v1/sales/{id}/refunds", "/v1/sales/"+id+"/refunds", `{"amount_minor": 2000}`, "Idempotency-Key", "k1")
	check("POST", "/v1/sales/{id}/refunds", "/v1/sales/"+id+"/refunds", `{"amount_minor": 2000}`, "Idempotency-Key", "k1")
	check("POST", "/v1/sales/{id}/refunds", "/v1/sales/"+id+"/refunds", `{"amount_minor": 3000}`, "Idempotency-Key", "k1")
	check("GET", "/v1/refunds/{id}", "/v1/refunds/"+ref["id"].(string), "")
	f.e.HandleResult(context.Background(), payment.Result{Key: ref["id"].(string), Kind: payment.KindRefund, Status: payment.ResultApproved})
	s, _ = f.e.Get(id)
	made[0] = s
	check("POST", "/v1/sales/last/void", "/v1/sales/last/void", `{}`)
	check("GET", "/v1/batches/current", "/v1/batches/current", "")
	check("GET", "/v1/batches/{id}", "/v1/batches/current", "")
	check("GET", "/v1/batches/{id}/report", "/v1/batches/current/report?format=json", "")
	check("POST", "/v1/batches/close", "/v1/batches/close", "") // 409 while the void's refund is pending
	check("GET", "/v1/tokens", "/v1/tokens", "")
	check("POST", "/v1/tokens", "/v1/tokens", `{"name": "till-2", "role": "clerk"}`)
	check("DELETE", "/v1/tokens/{name}", "/v1/tokens/till-2", "")
	check("DELETE", "/v1/tokens/{name}", "/v1/tokens/till-2", "")
	check("POST", "/v1/pins", "/v1/pins", `{"name": "kim", "role": "clerk", "pin": "4829"}`)
	check("POST", "/v1/pins", "/v1/pins", `{"name": "kim", "role": "clerk", "pin": "48"}`)
	check("GET", "/v1/pins", "/v1/pins", "")
	check("GET", "/v1/session", "/v1/session", "")
	check("POST", "/v1/session", "/v1/session", `{"name": "kim", "pin": "4829"}`)
	check("POST", "/v1/session", "/v1/session", `{"name": "kim", "pin": "0000"}`)
	check("DELETE", "/v1/pins/{name}", "/v1/pins/kim", "")
	check("GET", "/v1/demo/code", "/v1/demo/code", "")
	f.s.DemoCode = func() string { return "281234123412341234" }
	check("GET", "/v1/demo/code", "/v1/demo/code", "")
	check("DELETE", "/v1/session", "/v1/session", "")

	// The fleet configuration, the firmware and /metrics: first without them (501,
	// 404), then with fakes standing in for the daemon's implementations (same JSON
	// shapes as daemon/fleet.go and daemon/firmware.go), through the real handlers.
	check("GET", "/v1/config", "/v1/config", "")
	check("GET", "/v1/config/history", "/v1/config/history", "")
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 2}`)
	check("GET", "/v1/firmware", "/v1/firmware", "")
	check("POST", "/v1/firmware", "/v1/firmware", "artifact", "Content-Type", "application/octet-stream")
	check("POST", "/v1/firmware/rollback", "/v1/firmware/rollback", "")
	check("GET", "/metrics", "/metrics", "")
	f.s.Config = &fakeConfig{}
	f.s.Firmware = &fakeFirmware{}
	check("GET", "/v1/config", "/v1/config", "")
	check("GET", "/v1/config/history", "/v1/config/history", "")
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 2}`)
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 99}`)  // 404
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 3}`)   // 202: still waiting
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 4}`)   // 409
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 0}`)   // 400
	check("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": "2"}`) // 400
	check("GET", "/v1/firmware", "/v1/firmware", "")
	check("POST", "/v1/firmware", "/v1/firmware?check=1", "artifact", "Content-Type", "application/octet-stream")
	check("POST", "/v1/firmware", "/v1/firmware", "artifact", "Content-Type", "application/octet-stream")
	check("POST", "/v1/firmware", "/v1/firmware", "busy", "Content-Type", "application/octet-stream")
	check("POST", "/v1/firmware", "/v1/firmware", "forged", "Content-Type", "application/octet-stream")
	check("POST", "/v1/firmware", "/v1/firmware", "artifact", "Content-Type", "text/plain") // 415
	check("POST", "/v1/firmware/rollback", "/v1/firmware/rollback", "")
	check("POST", "/v1/firmware/rollback", "/v1/firmware/rollback", "") // 409: nothing on trial any more
	f.s.Firmware.(*fakeFirmware).updating = true
	check("GET", "/v1/firmware", "/v1/firmware", "")
	for _, p := range []struct{ method, template, path string }{
		{"GET", "/v1/config", "/v1/config"}, {"GET", "/v1/firmware", "/v1/firmware"}, {"POST", "/v1/firmware/rollback", "/v1/firmware/rollback"}, {"GET", "/metrics", "/metrics"},
	} { // a clerk may not
		code, _, raw := f.doWith(p.method, p.path, "", "Authorization", "Bearer "+f.clerk, "Content-Type", "application/json")
		if err := spec.Check(p.method, p.template, code, "application/json", []byte(raw)); err != nil || code != http.StatusForbidden {
			t.Errorf("%s %s as a clerk: %d %v", p.method, p.path, code, err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "walletless_test_total", Help: "A test counter."}))
	f.s.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})

	// Media types of the answers that are not JSON.
	for _, c := range []struct{ method, template, path, want string }{
		{"GET", "/v1/batches/{id}/report", "/v1/batches/current/report", "text/plain"},
		{"GET", "/v1/events", "/v1/events", "text/event-stream"},
		{"GET", "/metrics", "/metrics", "text/plain"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, c.method, f.srv.URL+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+f.manager)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err := spec.Check(c.method, c.template, resp.StatusCode, mt, nil); err != nil || mt != c.want {
			t.Errorf("%s: %s %v", c.path, mt, err)
		}
		cancel()
		resp.Body.Close()
	}
	// The document itself catches a wrong answer (the check can fail).
	if err := spec.Check("GET", "/v1/sales/{id}", 200, "application/json", []byte(`{"id": "x"}`)); err == nil {
		t.Error("an answer without the sale's fields passed")
	}
	if err := spec.Check("GET", "/v1/sales/{id}", 418, "application/json", bytes.TrimSpace([]byte(`{}`))); err == nil {
		t.Error("an undocumented status passed")
	}
}

// fakeConfig stands in for the daemon's ConfigHistory (daemon/fleet.go historyView)
// with the same JSON shapes: version 2 rolls back, 3 is still waiting for the
// counter, 4 is refused, anything else is not in the history.
type fakeConfig struct{}

// historyEntry is daemon.HistoryEntry (package daemon imports this one).
type historyEntry struct {
	Version   int64           `json:"version"`
	Slot      string          `json:"slot"`
	AppliedAt time.Time       `json:"applied_at"`
	InForce   bool            `json:"in_force"`
	Config    json.RawMessage `json:"config"`
	Effective json.RawMessage `json:"effective,omitempty"`
}

func (fakeConfig) Current() any {
	return map[string]any{"version": int64(3), "current": int64(3), "config": json.RawMessage(`{"merchant":{"name":"Test Mart"},"mqtt":{"password":"(redacted)"}}`)}
}

func (fakeConfig) History() any {
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	entries := []historyEntry{
		{Version: 3, Slot: "device", AppliedAt: at, InForce: true, Config: json.RawMessage(`{"api":{"addr":"127.0.0.1:8080"}}`), Effective: json.RawMessage(`{"api":{"addr":"127.0.0.1:8080"}}`)},
		{Version: 2, Slot: "all", AppliedAt: at.Add(-time.Hour), Config: nil},
	}
	last := &fleet.Report{V: 1, Device: "T-1", Version: 3, Code: 0, At: at}
	return map[string]any{"version": int64(3), "current": int64(3), "history": entries, "last_report": last}
}

func (fakeConfig) Rollback(ctx context.Context, version int64) error {
	switch version {
	case 2:
		return nil
	case 3:
		return context.DeadlineExceeded
	case 4:
		return errors.New("fleet: the configuration of version 4 does not start: api.addr is taken")
	}
	return fmt.Errorf("%w: %d", ErrUnknownVersion, version)
}

// fakeFirmware stands in for the daemon's FirmwareUpdates (daemon/firmware.go
// fwAgent) with the same JSON shapes. A body "busy" finds an update in progress,
// "forged" has a bad signature; the first rollback works, the next finds nothing on
// trial.
type fakeFirmware struct {
	updating   bool
	rolledBack bool
}

// fwProgress and flashResult are the daemon's fwProgress and FlashResult.
type fwProgress struct {
	Step            string    `json:"step"`
	Version         string    `json:"version"`
	Percent         int       `json:"percent"`
	EstimateSeconds int       `json:"estimate_seconds"`
	Since           time.Time `json:"since"`
	Reason          string    `json:"reason,omitempty"`
}

type flashResult struct {
	ID         string             `json:"id,omitempty"`
	Running    string             `json:"running"`
	Version    string             `json:"version"`
	MinVersion string             `json:"min_version,omitempty"`
	Floor      string             `json:"floor,omitempty"`
	Arch       string             `json:"arch"`
	Board      string             `json:"board"`
	KeyID      string             `json:"key_id"`
	Payloads   []firmware.Payload `json:"payloads"`
	Slot       string             `json:"slot"`
}

func (f *fakeFirmware) Status() any {
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	st := firmware.State{V: 1, Slot: "a", Version: "1.4.0", Floor: "1.2.0",
		Last: &firmware.Outcome{ID: "usb-posd.wlf-1234", Version: "1.4.0", Result: firmware.ResultSucceeded, At: at}}
	out := map[string]any{"running": "1.4.0", "backend": "dir", "state": st, "target": firmware.Target{Arch: "arm64", Board: "t2", Floor: "1.2.0"}}
	if f.updating {
		st.Update = &firmware.Update{ID: "flash-1", Source: "flash", File: "/var/lib/walletless/firmware/flash-1.wlf", Version: "1.5.0", Step: firmware.StepVerifyNew,
			From: "a", FromVersion: "1.4.0", To: "b", Attempts: 1, Deadline: at.Add(time.Hour), Before: firmware.Health{Scanner: true, Printer: true}, Snapshot: true, Started: at}
		out["state"] = st
		out["updating"] = &fwProgress{Step: "verify_new", Version: "1.5.0", Percent: 50, EstimateSeconds: 30, Since: at}
	}
	return out
}

func (f *fakeFirmware) Flash(_ context.Context, body io.Reader, checkOnly bool) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	switch string(b) {
	case "busy":
		return nil, fmt.Errorf("%w (flash-1 to 1.5.0, install)", firmware.ErrBusy)
	case "forged":
		return nil, fmt.Errorf("firmware: %w", firmware.ErrSignature)
	}
	res := flashResult{Running: "1.4.0", Version: "1.5.0", MinVersion: "1.2.0", Floor: "1.2.0", Arch: "arm64", Board: "t2", KeyID: "0123456789ABCDEF",
		Payloads: []firmware.Payload{{Name: "posd", Size: 1 << 20, SHA256: strings.Repeat("ab", 32), Mode: 0o755}}, Slot: "b"}
	if !checkOnly {
		res.ID = "flash-1"
	}
	return res, nil
}

func (f *fakeFirmware) Rollback(context.Context) error {
	if f.rolledBack {
		return errors.New("daemon: no firmware is on trial; to go back to an older version flash it (it must not be below the floor \"1.2.0\")")
	}
	f.rolledBack = true
	return nil
}
