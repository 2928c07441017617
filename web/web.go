package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
)

//go:embed static
var files embed.FS

// Languages are the page's languages.
var Languages = []string{"en", "ko", "ja", "zh"}

// Config is what the page learns before sign-in (served as /config.json): nothing
// secret.
type Config struct {
	// Language is the default language (the clerk may switch; the choice is kept
	// in the browser).
	Language string `json:"language"`
	// Currencies are the keypad's currencies, the first by default.
	Currencies []string `json:"currencies"`
	// Merchant is the shop's name for the header.
	Merchant string `json:"merchant"`
	// Demo shows the "demo customer" button.
	Demo bool `json:"demo"`
}

// Handler serves the page. It fails only on a language it does not have.
func Handler(cfg Config) (http.Handler, error) {
	if !slices.Contains(Languages, cfg.Language) {
		return nil, fmt.Errorf("web: language %q is not one of %v", cfg.Language, Languages)
	}
	if len(cfg.Currencies) == 0 {
		return nil, fmt.Errorf("web: no currency for the keypad")
	}
	conf, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	fileServer := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch r.URL.Path {
		case "/config.json":
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(conf)
		case "/", "/index.html", "/app.js", "/app.css":
			fileServer.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}), nil
}

// Weight returns the page's size in bytes: every file it loads.
func Weight() int {
	n := 0
	_ = fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := files.ReadFile(path)
			n += len(b)
		}
		return nil
	})
	return n
}
