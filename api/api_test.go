package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/store"
)

type fixture struct {
	t       *testing.T
	e       *payment.Engine
	s       *Server
	srv     *httptest.Server
	tokens  *auth.Store
	manager string // a manager token
	clerk   string // a clerk token
}

// newTokens returns a token store with a manager and a clerk token.
func newTokens(t testing.TB) (st *auth.Store, manager, clerk string) {
	st, err := auth.Open(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if manager, _, err = st.Create("boss", auth.RoleManager); err != nil {
		t.Fatal(err)
	}
	if clerk, _, err = st.Create("till", auth.RoleClerk); err != nil {
		t.Fatal(err)
	}
	return st, manager, clerk
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "posd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := payment.New(payment.Config{
		Store:        st,
		EncodeOutbox: func(m payment.Message) ([]byte, error) { return json.Marshal(m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	s := New(e, func() any { return map[string]any{"ok": true} }, nil)
	s.Merchant = "Test Mart"
	tokens, manager, clerk := newTokens(t)
	s.Tokens = tokens
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); cancel(); <-done; st.Close() })
	return &fixture{t: t, e: e, s: s, srv: srv, tokens: tokens, manager: manager, clerk: clerk}
}

// do sends a request with the manager token and Content-Type: application/json.
func (f *fixture) do(method, path, body string) (int, map[string]any, string) {
	f.t.Helper()
	return f.doWith(method, path, body, "Authorization", "Bearer "+f.manager, "Content-Type", "application/json")
}

// doWith sends a request with exactly the given header pairs ("Host" sets the Host).
func (f *fixture) doWith(method, path, body string, headers ...string) (int, map[string]any, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var m map[string]any
	json.Unmarshal(buf.Bytes(), &m)
	return resp.StatusCode, m, buf.String()
}

func TestSaleRefundBatchOverHTTP(t *testing.T) {
	f := newFixture(t)
	if code, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW", "flow": "merchant_presented"}`); code != 409 || !strings.Contains(m["error"].(string), "not configured") {
		t.Fatalf("merchant-presented without a template: %d %v", code, m)
	}
	if code, _, _ := f.do("POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW", "flow": "telepathy"}`); code != 400 {
		t.Fatalf("unknown flow: %d", code)
	}
	code, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 10000, "currency": "KRW", "flow": "customer_presented"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	id := m["id"].(string)
	for _, c := range []struct {
		body string
		want int
	}{{`{}`, 400}, {`{"code": ""}`, 400}, {`{"code": 5}`, 400}, {`{"code": "x", "y": 1}`, 400}} {
		if code, m, _ := f.do("POST", "/v1/sales/"+id+"/code", c.body); code != c.want {
			t.Errorf("code %s: %d %v", c.body, code, m)
		}
	}
	code, m, raw := f.do("POST", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`)
	if code != 200 || m["status"] != "authorizing" || strings.Contains(raw, "281234567890") {
		t.Fatalf("scan: %d %s", code, raw)
	}
	// Second scan while authorizing, a scan for nothing, a refund before approval.
	if code, m, _ := f.do("POST", "/v1/sales/"+id+"/code", `{"code": "134567890123456789"}`); code != 409 || !strings.Contains(m["error"].(string), "authorizing") {
		t.Errorf("second scan: %d %v", code, m)
	}
	if code, _, _ := f.do("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 1}`); code != 409 {
		t.Errorf("refund before approval: %d", code)
	}
	f.e.HandleResult(context.Background(), payment.Result{Key: id, Status: payment.ResultApproved})
	for _, c := range []struct {
		body string
		want int
	}{{`{}`, 400}, {`{"amount_minor": 0}`, 400}, {`{"amount_minor": 10001}`, 400}, {`{"amount_minor": 1.5}`, 400}} {
		if code, m, _ := f.do("POST", "/v1/sales/"+id+"/refunds", c.body); code != c.want {
			t.Errorf("refund %s: %d %v", c.body, code, m)
		}
	}
	code, m, _ = f.do("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 2500}`)
	if code != 201 || m["sale_id"] != id || m["status"] != "pending" {
		t.Fatalf("refund: %d %v", code, m)
	}
	rid := m["id"].(string)
	if code, m, _ := f.do("GET", "/v1/refunds/"+rid, ""); code != 200 || m["amount_minor"] != float64(2500) {
		t.Fatalf("get refund: %d %v", code, m)
	}
	// The refund belongs to the open batch: closing waits for its answer.
	if code, m, _ := f.do("POST", "/v1/batches/close", ""); code != 409 || !strings.Contains(m["error"].(string), "1 refund of this batch") {
		t.Fatalf("close with a refund pending: %d %v", code, m)
	}
	f.e.HandleResult(context.Background(), payment.Result{Key: rid, Kind: payment.KindRefund, Status: payment.ResultApproved})
	code, m, _ = f.do("GET", "/v1/batches/current", "")
	totals, _ := m["totals"].([]any)
	if code != 200 || len(totals) != 1 || totals[0].(map[string]any)["net_minor"] != float64(7500) {
		t.Fatalf("current batch: %d %v", code, m)
	}
	code, m, _ = f.do("POST", "/v1/batches/close", "")
	if code != 200 || m["status"] != "closed" || !strings.Contains(m["report"].(string), "NET KRW 7500") {
		t.Fatalf("close: %d %v", code, m)
	}
	bid := m["id"].(string)
	if code, _, raw := f.do("GET", "/v1/batches/"+bid+"/report", ""); code != 200 || !strings.Contains(raw, "Z REPORT  batch 1") || !strings.Contains(raw, "Test Mart") {
		t.Fatalf("report: %d %s", code, raw)
	}
	if code, m, _ := f.do("GET", "/v1/batches/"+bid+"/report?format=json", ""); code != 200 || m["number"] != float64(1) {
		t.Fatalf("json report: %d %v", code, m)
	}
	if code, _, _ := f.do("GET", "/v1/batches/current/report?format=xml", ""); code != 400 {
		t.Fatalf("bad format: %d", code)
	}
	for _, p := range []string{"/v1/batches/nope", "/v1/refunds/nope", "/v1/batches/0190b7a4-0000-7000-8000-000000000000"} {
		if code, _, _ := f.do("GET", p, ""); code != 404 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if code, _, _ := f.do("POST", "/v1/sales/nope/code", `{"code":"1"}`); code != 404 {
		t.Errorf("scan for bad id: %d", code)
	}
}

// FuzzDecodeSaleRequests throws arbitrary bodies at the endpoints that decode JSON: the
// answer is always JSON with a 2xx or 4xx status, never a 5xx or a panic, and never
// echoes a code.
func FuzzDecodeSaleRequests(f *testing.F) {
	for _, s := range []string{`{"amount_minor": 100, "currency": "KRW"}`, `{"amount_minor": -1}`, `{"amount_minor": 1e3, "currency": "JPY"}`,
		`{"code": "281234567890123456"}`, `[]`, `null`, `{"amount_minor": 5, "currency": "KRW", "ecr_ref": "r\u0000"}`,
		`{"ecr_ref": "x"}`, `{"sale_id": "nope"}`, `{"name": "kim", "pin": "1234"}`, `{"token": ""}`, `{"name": "a", "role": "clerk", "pin": "12345"}`, `{"amount_minor": 9223372036854775808, "currency": "KRW"}`, "{\"currency\": \"\xff\"}", `{} {}`} {
		f.Add(s)
	}
	st, err := store.Open(filepath.Join(f.TempDir(), "posd.db"), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	e, _ := payment.New(payment.Config{Store: st, EncodeOutbox: func(m payment.Message) ([]byte, error) { return json.Marshal(m) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	h := New(e, func() any { return nil }, nil)
	tokens, manager, _ := newTokens(f)
	h.Tokens = tokens
	h.Sessions = &auth.Sessions{}
	if h.PINs, err = auth.OpenPINs(filepath.Join(f.TempDir(), "pins.json")); err != nil {
		f.Fatal(err)
	}
	if h.Keys, err = OpenKeys(filepath.Join(f.TempDir(), "registers.db")); err != nil {
		f.Fatal(err)
	}
	defer h.Keys.Close()
	h.Waiting = e.Waiting
	h.ListSales = func(from, to time.Time) ([]payment.Sale, error) { return nil, nil }
	h.Reprint = func(string) error { return nil }
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/sales", "/v1/sales/0190b7a4-0000-7000-8000-000000000000/code", "/v1/sales/0190b7a4-0000-7000-8000-000000000000/refunds",
			"/v1/abort", "/v1/session", "/v1/pins", "/v1/sales/last/void", "/v1/receipts/last/print"} {
			w := httptest.NewRecorder()
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Host = "localhost"
			req.Header.Set("Authorization", "Bearer "+manager)
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("POST %s %q: non-JSON answer %q", path, body, w.Body)
			}
			if w.Code == 201 && path == "/v1/sales" {
				// Keep the counter free for the next input.
				e.Cancel(context.Background(), m["id"].(string))
			}
		}
	})
}
