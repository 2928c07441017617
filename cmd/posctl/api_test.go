package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/auth"
)

// fakePosd serves the real API (status and tokens) with a manager token written to
// dir/admin.token; tls selects HTTPS with httptest's certificate.
func fakePosd(t *testing.T, tls bool) (srv *httptest.Server, dir, fingerprint string) {
	t.Helper()
	dir = t.TempDir()
	tokens, err := auth.Open(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tokens.EnsureAdmin(filepath.Join(dir, "admin.token")); err != nil {
		t.Fatal(err)
	}
	s := api.New(nil, func() any { return map[string]any{"device_id": "till-9", "tls_fingerprint": fingerprint} }, nil)
	s.Tokens = tokens
	if tls {
		srv = httptest.NewTLSServer(s)
		sum := sha256.Sum256(srv.Certificate().Raw)
		fingerprint = hex.EncodeToString(sum[:])
	} else {
		srv = httptest.NewServer(s)
	}
	t.Cleanup(srv.Close)
	return srv, dir, fingerprint
}

func posctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestStatusSendsTheAdminToken(t *testing.T) {
	t.Setenv("WALLETLESS_TOKEN", "")
	srv, dir, _ := fakePosd(t, false)
	if code, out, errs := posctl(t, "status", "-api", srv.URL, "-data", dir); code != 0 || !strings.Contains(out, `"till-9"`) {
		t.Fatalf("status: exit %d %s %s", code, out, errs)
	}
	if code, out, errs := posctl(t, "status", "-api", srv.URL, "-token-file", filepath.Join(dir, "admin.token")); code != 0 || !strings.Contains(out, `"till-9"`) {
		t.Fatalf("status -token-file: exit %d %s %s", code, out, errs)
	}
	// No token at all: a clear message, not a 401 from posd.
	if code, _, errs := posctl(t, "status", "-api", srv.URL, "-data", t.TempDir()); code != 1 || !strings.Contains(errs, "-token-file") {
		t.Fatalf("no token: exit %d %s", code, errs)
	}
	// A wrong token: posd's 401 is shown and posctl exits 1.
	t.Setenv("WALLETLESS_TOKEN", "wlt_wrong")
	if code, out, _ := posctl(t, "status", "-api", srv.URL); code != 1 || !strings.Contains(out, "not valid") {
		t.Fatalf("wrong token: exit %d %s", code, out)
	}
}

func TestOpenTokenFileIsRefusedWithTheChmod(t *testing.T) {
	t.Setenv("WALLETLESS_TOKEN", "")
	srv, dir, _ := fakePosd(t, false)
	file := filepath.Join(dir, "admin.token")
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := posctl(t, "status", "-api", srv.URL, "-token-file", file)
	if code != 1 || out != "" || !strings.Contains(errs, "chmod 600 "+file) {
		t.Fatalf("0644 token file: exit %d %q %q", code, out, errs)
	}
}

func TestTokenCommands(t *testing.T) {
	t.Setenv("WALLETLESS_TOKEN", "")
	srv, dir, _ := fakePosd(t, false)
	code, out, errs := posctl(t, "token", "create", "-api", srv.URL, "-data", dir, "-name", "ecr-1", "-role", "clerk")
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, auth.TokenPrefix) || !strings.Contains(errs, "shown only this once") {
		t.Fatalf("create: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := posctl(t, "token", "create", "-api", srv.URL, "-data", dir, "-name", "ecr-1"); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("create twice: exit %d %s", code, errs)
	}
	code, out, _ = posctl(t, "token", "list", "-api", srv.URL, "-data", dir)
	if code != 0 || !strings.Contains(out, "ecr-1") || !strings.Contains(out, "clerk") || !strings.Contains(out, "admin") || strings.Contains(out, tok) {
		t.Fatalf("list: exit %d %s", code, out)
	}
	// The clerk token works for status and cannot manage tokens.
	t.Setenv("WALLETLESS_TOKEN", tok)
	if code, _, _ := posctl(t, "status", "-api", srv.URL); code != 0 {
		t.Errorf("status with the clerk token: exit %d", code)
	}
	if code, _, errs := posctl(t, "token", "list", "-api", srv.URL); code != 1 || !strings.Contains(errs, "403") {
		t.Errorf("list with a clerk token: exit %d %s", code, errs)
	}
	t.Setenv("WALLETLESS_TOKEN", "")
	if code, out, errs := posctl(t, "token", "revoke", "ecr-1", "-api", srv.URL, "-data", dir); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: exit %d %s %s", code, out, errs)
	}
	t.Setenv("WALLETLESS_TOKEN", tok)
	if code, _, _ := posctl(t, "status", "-api", srv.URL); code != 1 {
		t.Errorf("status with a revoked token: exit %d", code)
	}
	for _, args := range [][]string{{"token"}, {"token", "create"}, {"token", "revoke"}, {"token", "frob"}} {
		if code, _, _ := posctl(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestHTTPSWithAPinnedFingerprint(t *testing.T) {
	t.Setenv("WALLETLESS_TOKEN", "")
	srv, dir, fp := fakePosd(t, true)
	if code, out, errs := posctl(t, "status", "-api", srv.URL, "-data", dir, "-pin", fp); code != 0 || !strings.Contains(out, fp) {
		t.Fatalf("pinned: exit %d %s %s", code, out, errs)
	}
	colons := strings.ToUpper(fp[:2] + ":" + fp[2:])
	if code, _, errs := posctl(t, "status", "-api", srv.URL, "-data", dir, "-pin", colons); code != 0 {
		t.Fatalf("pin with colons: exit %d %s", code, errs)
	}
	wrong := strings.Repeat("ab", 32)
	if code, _, errs := posctl(t, "status", "-api", srv.URL, "-data", dir, "-pin", wrong); code != 1 || !strings.Contains(errs, "not the pinned one") {
		t.Fatalf("wrong pin: exit %d %s", code, errs)
	}
	if code, _, errs := posctl(t, "status", "-api", srv.URL, "-data", dir); code != 1 || !strings.Contains(errs, "-pin") {
		t.Fatalf("no pin: exit %d %s", code, errs)
	}
	if code, _, errs := posctl(t, "status", "-api", srv.URL, "-data", dir, "-pin", "xyz"); code != 1 || !strings.Contains(errs, "64 hex") {
		t.Fatalf("bad pin: exit %d %s", code, errs)
	}
	// The self-test page carries the fingerprint.
	fs := newFlagSetForTest()
	af := addAPIFlags(fs)
	fs.Parse([]string{"-api", srv.URL, "-data", dir, "-pin", fp})
	var found bool
	for _, f := range posdFields(context.Background(), af) {
		if f[0] == "API TLS" && strings.ReplaceAll(strings.TrimPrefix(f[1], "SHA-256 "), " ", "") == fp {
			found = true
		}
	}
	if !found {
		t.Errorf("print-test fields lack the fingerprint: %v", posdFields(context.Background(), af))
	}
}

func newFlagSetForTest() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }
