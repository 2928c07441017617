package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/payment"
)

func withKeys(t *testing.T, f *fixture) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registers.db")
	k, err := OpenKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	f.s.Keys = k
	t.Cleanup(func() { f.s.Keys.Close() })
	return path
}

func TestECRRefCreatesOnce(t *testing.T) {
	f := newFixture(t)
	withKeys(t, f)
	body := `{"amount_minor": 12000, "currency": "KRW", "ecr_ref": "till1-000042"}`
	code, m, _ := f.do("POST", "/v1/sales", body)
	if code != 201 || m["ecr_ref"] != "till1-000042" {
		t.Fatalf("first create: %d %v", code, m)
	}
	id := m["id"].(string)
	code, m, _ = f.do("POST", "/v1/sales", body)
	if code != 200 || m["id"] != id {
		t.Fatalf("retried create: %d %v (want 200 and sale %s)", code, m, id)
	}
	if code, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 13000, "currency": "KRW", "ecr_ref": "till1-000042"}`); code != 409 {
		t.Fatalf("same ecr_ref, other amount: %d %v", code, m)
	}
	if code, m, _ := f.do("GET", "/v1/ecr/till1-000042", ""); code != 200 || m["id"] != id {
		t.Fatalf("status by ecr_ref: %d %v", code, m)
	}
	if code, m, _ := f.do("GET", "/v1/sales/"+id, ""); code != 200 || m["ecr_ref"] != "till1-000042" {
		t.Fatalf("sale shows its ecr_ref: %d %v", code, m)
	}
	if code, _, _ := f.do("GET", "/v1/ecr/unknown", ""); code != 404 {
		t.Fatalf("unknown ecr_ref: %d", code)
	}
	// Abort by ecr_ref from another client (the clerk's token).
	code, m, _ = f.doWith("POST", "/v1/abort", `{"ecr_ref": "till1-000042"}`, "Authorization", "Bearer "+f.clerk, "Content-Type", "application/json")
	if code != 200 || m["status"] != "cancelled" {
		t.Fatalf("abort: %d %v", code, m)
	}
	if code, _, _ := f.do("POST", "/v1/abort", `{}`); code != 409 {
		t.Fatalf("abort with nothing waiting: %d", code)
	}
}

func TestIdempotencyKeySurvivesRestart(t *testing.T) {
	f := newFixture(t)
	path := withKeys(t, f)
	code, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 10000, "currency": "KRW"}`)
	if code != 201 {
		t.Fatal(code, m)
	}
	id := m["id"].(string)
	f.do("POST", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`)
	f.e.HandleResult(context.Background(), payment.Result{Key: id, Status: payment.ResultApproved})
	hdr := []string{"Authorization", "Bearer " + f.manager, "Content-Type", "application/json", "Idempotency-Key", "refund-7f3a"}
	code, m, raw1 := f.doWith("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 2500}`, hdr...)
	if code != 201 {
		t.Fatalf("refund: %d %v", code, m)
	}
	rid := m["id"]
	// posd restarts: the key file is closed and opened again.
	f.s.Keys.Close()
	k, err := OpenKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	f.s.Keys = k
	code, m, raw2 := f.doWith("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 2500}`, hdr...)
	if code != 201 || m["id"] != rid || raw1 != raw2 {
		t.Fatalf("retried refund: %d %v (want the first answer again)", code, m)
	}
	sale, _ := f.e.Get(id)
	if sale.RefundedMinor != 2500 || len(sale.Refunds) != 1 {
		t.Fatalf("the retry refunded again: %+v", sale)
	}
	if code, _, _ := f.doWith("POST", "/v1/sales/"+id+"/refunds", `{"amount_minor": 100}`, hdr...); code != 422 {
		t.Fatalf("same key, other body: %d", code)
	}
	// Closes too.
	f.e.HandleResult(context.Background(), payment.Result{Key: rid.(string), Kind: payment.KindRefund, Status: payment.ResultApproved})
	ch := []string{"Authorization", "Bearer " + f.manager, "Content-Type", "application/json", "Idempotency-Key", "close-1"}
	code, m, _ = f.doWith("POST", "/v1/batches/close", ``, ch...)
	if code != 200 {
		t.Fatal(code, m)
	}
	code, m2, _ := f.doWith("POST", "/v1/batches/close", ``, ch...)
	if code != 200 || m2["id"] != m["id"] {
		t.Fatalf("retried close closed another batch: %v vs %v", m2["id"], m["id"])
	}
}

func TestSessionCookieAndCSRF(t *testing.T) {
	f := newFixture(t)
	f.s.Sessions = &auth.Sessions{}
	pins, err := auth.OpenPINs(filepath.Join(t.TempDir(), "pins.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.s.PINs = pins
	if code, m, _ := f.do("POST", "/v1/pins", `{"name": "kim", "role": "clerk", "pin": "4829"}`); code != 201 {
		t.Fatal(code, m)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/session", strings.NewReader(`{"name": "kim", "pin": "4829"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookie {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in: %d %+v", resp.StatusCode, cookie)
	}
	if cookie.Secure {
		t.Error("a cookie over plain HTTP was marked Secure")
	}
	// Under TLS the cookie is Secure.
	treq := httptest.NewRequest("POST", "https://localhost/v1/session", strings.NewReader(`{"name": "kim", "pin": "4829"}`))
	treq.Header.Set("Content-Type", "application/json")
	tw := httptest.NewRecorder()
	f.s.ServeHTTP(tw, treq)
	if c := tw.Result().Cookies(); tw.Code != 200 || len(c) != 1 || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in under TLS: %d %v", tw.Code, c)
	}
	ck := auth.SessionCookie + "=" + cookie.Value
	if code, m, _ := f.doWith("GET", "/v1/session", "", "Cookie", ck); code != 200 || m["name"] != "kim" || m["via"] != "session" {
		t.Fatalf("who am I: %d %v", code, m)
	}
	sale := `{"amount_minor": 1000, "currency": "KRW"}`
	if code, _, _ := f.doWith("POST", "/v1/sales", sale, "Cookie", ck, "Content-Type", "application/json"); code != 403 {
		t.Fatalf("cookie POST without Origin: %d, want 403", code)
	}
	if code, _, _ := f.doWith("POST", "/v1/sales", sale, "Cookie", ck, "Content-Type", "application/json", "Origin", "http://evil.example"); code != 403 {
		t.Fatalf("cross-site cookie POST: %d, want 403", code)
	}
	if code, _, _ := f.doWith("POST", "/v1/sales", sale, "Cookie", ck, "Content-Type", "text/plain", "Origin", f.srv.URL); code != 415 {
		t.Fatalf("form-like cookie POST: %d, want 415", code)
	}
	if code, m, _ := f.doWith("POST", "/v1/sales", sale, "Cookie", ck, "Content-Type", "application/json", "Origin", f.srv.URL); code != 201 {
		t.Fatalf("same-origin cookie POST: %d %v", code, m)
	}
	if code, _, _ := f.doWith("POST", "/v1/batches/close", "", "Cookie", ck, "Content-Type", "application/json", "Origin", f.srv.URL); code != 403 {
		t.Fatalf("a clerk session closed the batch: %d", code)
	}
	if code, _, _ := f.doWith("POST", "/v1/session", `{"name": "kim", "pin": "0000"}`, "Content-Type", "application/json"); code != 401 {
		t.Fatalf("wrong PIN: %d", code)
	}
	f.doWith("DELETE", "/v1/session", "", "Cookie", ck, "Content-Type", "application/json", "Origin", f.srv.URL)
	if code, _, _ := f.doWith("GET", "/v1/session", "", "Cookie", ck); code != 401 {
		t.Fatalf("after sign-out: %d", code)
	}
}

func TestEventsStreamSales(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+f.clerk)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(want string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.Contains(l, want) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q on the stream", want)
			}
		}
	}
	next("event: status")
	code, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 10000, "currency": "KRW"}`)
	if code != 201 {
		t.Fatal(code)
	}
	next("event: sale")
	next(`"waiting_for_code"`)
	f.do("POST", "/v1/sales/"+m["id"].(string)+"/cancel", "")
	next(`"cancelled"`)
}

// TestNoSecretInTheKeyFile: a payment code, a PIN and a new token sent with an
// Idempotency-Key leave no trace in registers.db.
func TestNoSecretInTheKeyFile(t *testing.T) {
	f := newFixture(t)
	path := withKeys(t, f)
	pins, _ := auth.OpenPINs(filepath.Join(t.TempDir(), "pins.json"))
	f.s.PINs = pins
	_, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW"}`)
	hdr := func(k string) []string {
		return []string{"Authorization", "Bearer " + f.manager, "Content-Type", "application/json", "Idempotency-Key", k}
	}
	f.doWith("POST", "/v1/sales/"+m["id"].(string)+"/code", `{"code": "281234567890123456"}`, hdr("a")...)
	f.doWith("POST", "/v1/pins", `{"name": "kim", "role": "clerk", "pin": "4829"}`, hdr("b")...)
	_, tok, _ := f.doWith("POST", "/v1/tokens", `{"name": "ecr-9", "role": "clerk"}`, hdr("c")...)
	f.s.Keys.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"281234567890123456", "4829", tok["token"].(string)} {
		sum := sha256.Sum256([]byte(secret))
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, sum[:]) {
			t.Errorf("registers.db holds %q or its hash", secret)
		}
	}
	for _, body := range []string{`{"code": "281234567890123456"}`, `{"name": "kim", "role": "clerk", "pin": "4829"}`, `{"name": "ecr-9", "role": "clerk"}`} {
		sum := sha256.Sum256([]byte(body))
		if bytes.Contains(raw, sum[:]) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(sum[:]))) {
			t.Errorf("registers.db holds the hash of %s", body)
		}
	}
	k, err := OpenKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	f.s.Keys = k
}

// TestVoidLastAndPrintLast: void cancels the newest sale while it waits and refunds
// it in full once paid; a clerk may not void; print-last reprints the newest sale.
func TestVoidLastAndPrintLast(t *testing.T) {
	f := newFixture(t)
	var ids []string
	f.s.ListSales = func(from, to time.Time) ([]payment.Sale, error) {
		var out []payment.Sale
		for _, id := range ids {
			s, err := f.e.Get(id)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	var printed []string
	f.s.Reprint = func(id string) error { printed = append(printed, id); return nil }
	if code, _, _ := f.do("POST", "/v1/sales/last/void", ""); code != 404 {
		t.Fatalf("void with no sale: %d", code)
	}
	_, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 9000, "currency": "KRW"}`)
	ids = append(ids, m["id"].(string))
	code, m, _ := f.do("POST", "/v1/sales/last/void", "")
	if code != 200 || m["action"] != "cancelled" || m["sale"].(map[string]any)["status"] != "cancelled" {
		t.Fatalf("void a waiting sale: %d %v", code, m)
	}
	if code, _, _ := f.do("POST", "/v1/sales/last/void", ""); code != 409 {
		t.Fatalf("void a cancelled sale: %d", code)
	}
	_, m, _ = f.do("POST", "/v1/sales", `{"amount_minor": 9000, "currency": "KRW"}`)
	id := m["id"].(string)
	ids = append(ids, id)
	f.do("POST", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`)
	if code, _, _ := f.do("POST", "/v1/sales/last/void", ""); code != 409 {
		t.Fatalf("void an authorizing sale: %d", code)
	}
	f.e.HandleResult(context.Background(), payment.Result{Key: id, Status: payment.ResultApproved})
	if code, _, _ := f.doWith("POST", "/v1/sales/last/void", "", "Authorization", "Bearer "+f.clerk, "Content-Type", "application/json"); code != 403 {
		t.Fatalf("a clerk voided: %d", code)
	}
	code, m, _ = f.do("POST", "/v1/sales/last/void", "")
	if code != 200 || m["action"] != "refunded" || m["refund"].(map[string]any)["amount_minor"] != float64(9000) {
		t.Fatalf("void a paid sale: %d %v", code, m)
	}
	if code, _, _ := f.do("POST", "/v1/sales/last/void", ""); code != 409 {
		t.Fatalf("void a refunded sale again: %d", code)
	}
	if code, _, _ := f.do("POST", "/v1/receipts/last/print", ""); code != 202 || len(printed) != 1 || printed[0] != id {
		t.Fatalf("print last: %d %v", code, printed)
	}
}
