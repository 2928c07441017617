package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesThePageAndNothingElse(t *testing.T) {
	if _, err := Handler(Config{Language: "fr", Currencies: []string{"KRW"}}); err == nil {
		t.Fatal("an unknown language was accepted")
	}
	if _, err := Handler(Config{Language: "ko"}); err == nil {
		t.Fatal("no currency was accepted")
	}
	h, err := Handler(Config{Language: "ko", Currencies: []string{"KRW", "JPY"}, Merchant: "Corner", Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/": 200, "/app.js": 200, "/app.css": 200, "/config.json": 200, "/static/app.js": 404, "/../web.go": 404, "/x": 404} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != want {
			t.Errorf("GET %s: %d, want %d", path, w.Code, want)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		if path == "/config.json" && w.Body.String() != `{"language":"ko","currencies":["KRW","JPY"],"merchant":"Corner","demo":true}` {
			t.Errorf("config.json: %s", w.Body)
		}
		if path == "/" && (!strings.Contains(w.Body.String(), `<script src="/app.js" defer>`) || strings.Contains(w.Body.String(), "http://") || strings.Contains(w.Body.String(), "https://")) {
			t.Errorf("the page loads something from elsewhere, or not its script")
		}
	}
	if n := Weight(); n < 10_000 || n > 100_000 {
		t.Errorf("page weight %d bytes", n)
	} else {
		t.Logf("page weight: %d bytes", n)
	}
}
