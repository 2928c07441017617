package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walletless/walletless/payment"
)

const someID = "0190b7a4-0000-7000-8000-000000000000"

// routePath turns a route pattern into a method and a concrete path.
func routePath(pattern string) (string, string) {
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{id}", someID)
	path = strings.ReplaceAll(path, "{name}", "nobody")
	return method, path
}

func TestEveryRouteNeedsAToken(t *testing.T) {
	f := newFixture(t)
	routes := f.s.routes()
	if len(routes) < 15 {
		t.Fatalf("only %d routes", len(routes))
	}
	routes = append(routes, route{pattern: "GET /v1/nowhere"})
	for _, rt := range routes {
		method, path := routePath(rt.pattern)
		for _, c := range []struct {
			name    string
			headers []string
		}{
			{"no token", []string{"Content-Type", "application/json"}},
			{"wrong token", []string{"Content-Type", "application/json", "Authorization", "Bearer wlt_" + strings.Repeat("A", 43)}},
			{"basic auth", []string{"Content-Type", "application/json", "Authorization", "Basic " + f.manager}},
			{"token without scheme", []string{"Content-Type", "application/json", "Authorization", f.manager}},
		} {
			f.s.limit.success("127.0.0.1") // this test counts 401s, not the slowdown
			code, m, _ := f.doWith(method, path, `{"amount_minor": 100, "currency": "KRW"}`, c.headers...)
			if code != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(m["error"]), "token") {
				t.Errorf("%s %s with %s: %d %v, want 401 with a JSON error", method, path, c.name, code, m)
			}
		}
	}
	if n, _ := f.e.Stats(context.Background()); n.Waiting != "" {
		t.Fatal("an unauthenticated request created a sale")
	}
}

func TestClerkCannotDoManagerThings(t *testing.T) {
	f := newFixture(t)
	clerk := func(method, path, body string) (int, map[string]any) {
		code, m, _ := f.doWith(method, path, body, "Authorization", "Bearer "+f.clerk, "Content-Type", "application/json")
		return code, m
	}
	_, m, _ := f.do("POST", "/v1/sales", `{"amount_minor": 10000, "currency": "KRW"}`)
	id := m["id"].(string)
	f.do("POST", "/v1/sales/"+id+"/code", `{"code": "281234567890123456"}`)
	f.e.HandleResult(context.Background(), payment.Result{Key: id, Status: payment.ResultApproved})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/sales/" + id + "/refunds", `{"amount_minor": 100}`},
		{"POST", "/v1/batches/close", ``},
		{"GET", "/v1/tokens", ``},
		{"POST", "/v1/tokens", `{"name": "sneaky", "role": "manager"}`},
		{"DELETE", "/v1/tokens/boss", ``},
	} {
		if code, m := clerk(c.method, c.path, c.body); code != http.StatusForbidden || !strings.Contains(fmt.Sprint(m["error"]), "manager token") {
			t.Errorf("clerk %s %s: %d %v, want 403", c.method, c.path, code, m)
		}
	}
	if _, ok := f.tokens.Check(f.manager); !ok || len(f.tokens.List()) != 2 {
		t.Error("a clerk changed the tokens")
	}
	if code, m, _ := f.do("GET", "/v1/sales/"+id, ""); code != 200 || m["refunded_minor"] != nil && m["refunded_minor"] != float64(0) {
		t.Errorf("the clerk's refund went through: %v", m)
	}
	// What a clerk may do.
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/status", "", 200},
		{"GET", "/v1/sales/" + id, "", 200},
		{"GET", "/v1/batches/current", "", 200},
		{"POST", "/v1/sales", `{"amount_minor": 500, "currency": "KRW"}`, 201},
	} {
		if code, m := clerk(c.method, c.path, c.body); code != c.want {
			t.Errorf("clerk %s %s: %d %v, want %d", c.method, c.path, code, m, c.want)
		}
	}
}

func TestTokenLifecycleOverHTTP(t *testing.T) {
	f := newFixture(t)
	code, m, raw := f.do("POST", "/v1/tokens", `{"name": "ecr-2", "role": "clerk"}`)
	tok, _ := m["token"].(string)
	if code != http.StatusCreated || m["role"] != "clerk" || !strings.HasPrefix(tok, "wlt_") {
		t.Fatalf("create: %d %s", code, raw)
	}
	use := func() int {
		c, _, _ := f.doWith("GET", "/v1/status", "", "Authorization", "Bearer "+tok)
		return c
	}
	if use() != 200 {
		t.Fatal("new token refused")
	}
	code, _, raw = f.do("GET", "/v1/tokens", "")
	if code != 200 || !strings.Contains(raw, `"ecr-2"`) || strings.Contains(raw, tok) || strings.Contains(raw, "sha256") {
		t.Fatalf("list: %d %s", code, raw)
	}
	for _, c := range []struct {
		body string
		want int
	}{{`{"name": "ecr-2", "role": "clerk"}`, 409}, {`{"name": "x y", "role": "clerk"}`, 400}, {`{"name": "z", "role": "root"}`, 400}} {
		if code, m, _ := f.do("POST", "/v1/tokens", c.body); code != c.want {
			t.Errorf("create %s: %d %v", c.body, code, m)
		}
	}
	if code, m, _ := f.do("DELETE", "/v1/tokens/ecr-2", ""); code != 200 {
		t.Fatalf("revoke: %d %v", code, m)
	}
	if c := use(); c != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", c)
	}
	if code, _, _ := f.do("DELETE", "/v1/tokens/ecr-2", ""); code != 404 {
		t.Errorf("revoke twice: %d", code)
	}
}

func TestStateChangesNeedJSONContentType(t *testing.T) {
	f := newFixture(t)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		code, m, _ := f.doWith("POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW"}`, "Authorization", "Bearer "+f.manager, "Content-Type", ct)
		if code != http.StatusUnsupportedMediaType || m["error"] == nil {
			t.Errorf("Content-Type %q: %d %v, want 415", ct, code, m)
		}
	}
	if n, _ := f.e.Stats(context.Background()); n.Waiting != "" {
		t.Fatal("a text/plain request created a sale")
	}
	if code, _, _ := f.doWith("POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW"}`, "Authorization", "Bearer "+f.manager, "Content-Type", "application/json; charset=utf-8"); code != 201 {
		t.Errorf("application/json; charset=utf-8: %d", code)
	}
}

func TestHostAndOriginChecks(t *testing.T) {
	f := newFixture(t)
	f.s.Hosts = []string{"till-7.local"}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(f.srv.URL, "http://"))
	auth := []string{"Authorization", "Bearer " + f.manager}
	for _, c := range []struct {
		host string
		want int
	}{
		{"evil.example:" + port, http.StatusMisdirectedRequest},
		{"evil.example", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io:" + port, http.StatusMisdirectedRequest},
		{"localhost:1", http.StatusMisdirectedRequest}, // another port
		{"localhost:" + port, 200},
		{"LOCALHOST:" + port, 200},
		{"127.0.0.1:" + port, 200},
		{"till-7.local:" + port, 200},
	} {
		if code, m, _ := f.doWith("GET", "/v1/status", "", append([]string{"Host", c.host}, auth...)...); code != c.want {
			t.Errorf("Host %q: %d %v, want %d", c.host, code, m, c.want)
		}
	}
	for _, c := range []struct {
		origin string
		want   int
	}{
		{"http://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"https://127.0.0.1:" + port, http.StatusForbidden}, // another scheme
		{"http://localhost:" + port, http.StatusForbidden},  // another origin than the one asked
		{"http://127.0.0.1:" + port, 200},
	} {
		if code, m, _ := f.doWith("GET", "/v1/status", "", append([]string{"Origin", c.origin}, auth...)...); code != c.want {
			t.Errorf("Origin %q: %d %v, want %d", c.origin, code, m, c.want)
		}
	}
	code, _, _ := f.doWith("POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW"}`, append([]string{"Origin", "http://evil.example", "Content-Type", "application/json"}, auth...)...)
	if n, _ := f.e.Stats(context.Background()); code != http.StatusForbidden || n.Waiting != "" {
		t.Fatalf("cross-origin POST: %d, sale %q", code, n.Waiting)
	}
}

func TestDuplicateAndCaseMismatchedKeysChangeNothing(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{
		`{"amount_minor": 100, "amount_minor": 200, "currency": "KRW"}`,
		`{"amount_minor": 100, "currency": "KRW", "currency": "JPY"}`,
		`{"Amount_Minor": 100, "currency": "KRW"}`,
		`{"amount_minor": 100, "CURRENCY": "KRW"}`,
		`{"amount_minor": 100, "currency": "KRW", "ﬂow": "merchant_presented"}`,
	} {
		code, m, _ := f.do("POST", "/v1/sales", body)
		if code != http.StatusBadRequest || m["error"] == nil {
			t.Errorf("%s: %d %v, want 400", body, code, m)
		}
	}
	if n, _ := f.e.Stats(context.Background()); n.Waiting != "" {
		t.Fatal("a hostile body created a sale")
	}
}

func TestCheckJSONKeys(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type outer struct {
		Name  string           `json:"name"`
		In    inner            `json:"in"`
		List  []inner          `json:"list"`
		Extra map[string]any   `json:"extra"`
		Ptr   *inner           `json:"ptr"`
		Raw   json.RawMessage  `json:"raw"`
		M     map[string]inner `json:"m"`
	}
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{"name": "x", "in": {"a": 1}, "list": [{"a": 1}, {"a": 2}], "extra": {"k": {"k": 1}}, "ptr": {"a": 1}}`, true},
		{`{"name": "x", "name": "y"}`, false},
		{`{"in": {"a": 1, "a": 2}}`, false},
		{`{"in": {"A": 1}}`, false},
		{`{"list": [{"a": 1}, {"a": 1, "a": 2}]}`, false},
		{`{"list": [{"A": 1}]}`, false},
		{`{"extra": {"k": 1, "k": 2}}`, false},
		{`{"extra": {"deep": [{"x": 1, "x": 2}]}}`, false},
		{`{"ptr": {"A": 1}}`, false},
		{`{"raw": {"q": 1, "q": 1}}`, false},
		{`{"m": {"k": {"A": 1}}}`, false},
		{`{"Name": "x"}`, false},
		{`{"nope": 1}`, false},
		{`{"name": "x"`, false},
		{strings.Repeat(`{"extra":`, 40) + "1" + strings.Repeat("}", 40), false},
	} {
		err := checkJSONKeys([]byte(c.body), &outer{})
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.body, err, c.ok)
		}
	}
}

// FuzzCheckJSONKeys: the checker never panics, and whatever it accepts for a sale
// request decodes into exactly the keys it was written with, each once.
func FuzzCheckJSONKeys(f *testing.F) {
	for _, s := range []string{`{"amount_minor": 100, "currency": "KRW"}`, `{"amount_minor": 1, "amount_minor": 2}`, `{"Currency": "KRW"}`,
		`{"flow": {"a": [1, {"b": 2, "b": 3}]}}`, `[`, `{"a":`, `"x"`, `{"currency": "\u004b"}`, "{\"cur\\u0072ency\": \"KRW\", \"currency\": \"JPY\"}"} {
		f.Add(s)
	}
	fields := jsonFields(reflect.TypeOf(createRequest{}))
	f.Fuzz(func(t *testing.T, body string) {
		err := checkJSONKeys([]byte(body), &createRequest{})
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &m) != nil {
			return // not an object; decoding refuses it anyway
		}
		keys := 0
		dec := json.NewDecoder(strings.NewReader(body))
		dec.Token() // {
		for dec.More() {
			k, _ := dec.Token()
			if _, ok := fields[k.(string)]; !ok {
				t.Fatalf("accepted key %q of %s", k, body)
			}
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return
			}
			keys++
		}
		if keys != len(m) {
			t.Fatalf("accepted a duplicate key in %s", body)
		}
	})
}

// fakeSales lets a test choose what the engine does; methods it does not set panic.
type fakeSales struct {
	Sales
	create func(ctx context.Context) (payment.Sale, error)
	get    func(id string) (payment.Sale, error)
}

func (s fakeSales) Create(ctx context.Context, _ int64, _ string) (payment.Sale, error) {
	return s.create(ctx)
}

func (s fakeSales) Get(id string) (payment.Sale, error) { return s.get(id) }

func fakeServer(t *testing.T, sales Sales) (*Server, string) {
	t.Helper()
	s := New(sales, func() any { return map[string]any{"ok": true} }, nil)
	tokens, manager, _ := newTokens(t)
	s.Tokens = tokens
	return s, manager
}

func send(t *testing.T, h http.Handler, token, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = "localhost"
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestFullDiskAnswers507(t *testing.T) {
	s, tok := fakeServer(t, fakeSales{create: func(context.Context) (payment.Sale, error) {
		return payment.Sale{}, fmt.Errorf("payment: commit: %w", fmt.Errorf("store: write: %w", syscall.ENOSPC))
	}})
	w := send(t, s, tok, "POST", "/v1/sales", `{"amount_minor": 100, "currency": "KRW"}`)
	var m map[string]string
	json.Unmarshal(w.Body.Bytes(), &m)
	if w.Code != http.StatusInsufficientStorage || !strings.Contains(m["error"], "disk is full") {
		t.Fatalf("ENOSPC: %d %s", w.Code, w.Body)
	}
}

func TestPanickingHandlerAnswers500AndServerKeepsServing(t *testing.T) {
	var calls atomic.Int32
	s, tok := fakeServer(t, fakeSales{get: func(id string) (payment.Sale, error) {
		if calls.Add(1) == 1 {
			var m map[string]int
			m["boom"]++ // a nil map: a runtime panic
		}
		return payment.Sale{ID: id, Status: payment.StatusApproved}, nil
	}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/sales/"+someID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("posd's API went away: %v", err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, fmt.Sprint(m)
	}
	if code, body := get(); code != 500 || !strings.Contains(body, "internal error") {
		t.Fatalf("panic: %d %s", code, body)
	}
	if code, body := get(); code != 200 || !strings.Contains(body, "approved") {
		t.Fatalf("after the panic: %d %s", code, body)
	}
}

func TestStoppingAnswers503(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, tok := fakeServer(t, fakeSales{create: func(ctx context.Context) (payment.Sale, error) {
		close(entered)
		<-release
		return payment.Sale{}, context.Canceled
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	inflight := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/sales", strings.NewReader(`{"amount_minor": 1, "currency": "KRW"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-entered
	cancel() // posd stops while a request is in flight
	deadline := time.Now().Add(5 * time.Second)
	for !s.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w := send(t, s, tok, "GET", "/v1/status", "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "stopping") {
		t.Errorf("while stopping: %d %s, want 503", w.Code, w.Body)
	}
	close(release)
	if code := <-inflight; code != http.StatusServiceUnavailable {
		t.Errorf("the request in flight: %d, want 503", code)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestFailedAttemptsAreSlowedDown(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.s.limit.now = func() time.Time { return now }
	bad := func() (int, string) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer wlt_guess")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	counts := map[int]int{}
	for range 20 {
		code, _ := bad()
		counts[code]++
	}
	if counts[401] != FreeFailures || counts[429] != 20-FreeFailures {
		t.Fatalf("answers to 20 wrong tokens: %v, want %d×401 then 429", counts, FreeFailures)
	}
	// While slowed down, even the right token waits (else guessing would go on).
	if code, _, _ := f.do("GET", "/v1/status", ""); code != http.StatusTooManyRequests {
		t.Fatalf("good token while blocked: %d", code)
	}
	now = now.Add(2 * time.Second)
	code, retry := bad() // the sixth failure: the delay doubles
	if code != 401 {
		t.Fatalf("after the delay: %d", code)
	}
	if code, retry = bad(); code != 429 || retry != "2" {
		t.Fatalf("after a sixth failure: %d Retry-After %q, want 429 and 2", code, retry)
	}
	now = now.Add(3 * time.Second)
	if code, _, _ := f.do("GET", "/v1/status", ""); code != 200 {
		t.Fatalf("good token after the delay: %d", code)
	}
	// A success resets the count.
	for i := range FreeFailures - 1 {
		if code, _ := bad(); code != 401 {
			t.Fatalf("failure %d after a success: %d", i+1, code)
		}
	}
}

// TestRefusalsAreLoggedWithoutSecrets: a wrong token and a panic whose value holds a
// payment code are logged, and neither the token nor the code reaches the log.
func TestRefusalsAreLoggedWithoutSecrets(t *testing.T) {
	var logs bytes.Buffer
	code := "281234567890123456"
	s := New(fakeSales{get: func(string) (payment.Sale, error) { panic("scan " + code + " went wrong") }}, func() any { return nil },
		slog.New(slog.NewTextHandler(&logs, nil)))
	tokens, manager, _ := newTokens(t)
	s.Tokens = tokens
	if w := send(t, s, "wlt_mysecretguess", "GET", "/v1/status", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", w.Code)
	}
	if w := send(t, s, manager, "GET", "/v1/sales/"+someID, ""); w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), code) {
		t.Fatalf("panic: %d %s", w.Code, w.Body)
	}
	out := logs.String()
	if !strings.Contains(out, "bad token") || !strings.Contains(out, "handler panicked") {
		t.Fatalf("refusals not logged:\n%s", out)
	}
	for _, secret := range []string{"mysecretguess", code, manager} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
}
