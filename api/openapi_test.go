package api

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/auth"
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

	// Media types of the answers that are not JSON.
	for _, c := range []struct{ method, template, path, want string }{
		{"GET", "/v1/batches/{id}/report", "/v1/batches/current/report", "text/plain"},
		{"GET", "/v1/events", "/v1/events", "text/event-stream"},
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
