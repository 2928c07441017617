package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/walletless/walletless/daemon"
	"github.com/walletless/walletless/paycode"
)

func TestBannerSamplesAreRecognised(t *testing.T) {
	b := banner(daemon.Info{APIURL: "http://127.0.0.1:8080", PageURL: "http://127.0.0.1:8080/", BrokerURL: "tcp://127.0.0.1:1", Printer: "emulator:demo/receipts", DataDir: "demo", Token: "wlt_demo"})
	for _, want := range []string{"counter page  http://127.0.0.1:8080/", "Demo customer", "curl -s -X POST http://127.0.0.1:8080/v1/sales", `-H "Authorization: Bearer wlt_demo"`, "Content-Type: application/json",
		`"amount_minor": 12000`, SampleAlipay, SampleWeChat, "demo/receipts", "demo/admin.token"} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	for code, scheme := range map[string]string{SampleAlipay: "alipay", SampleWeChat: "wechatpay"} {
		r, err := paycode.Identify(code)
		if err != nil || r.Scheme != scheme {
			t.Errorf("sample %s: %+v %v, want %s", code, r, err, scheme)
		}
	}
}

func TestBadFlagsAndConfigFailClearly(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 1, "mqtt": {"window": 0}}`), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", bad}, "mqtt.window"},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"-device-id", "a/b", "-data", dir}, "device_id"},
		{[]string{"-printer", "emulator:"}, "printer.target"},
		{[]string{"-log-level", "loud", "-data", dir}, "log-level"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, strings.NewReader(""), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("posd %v = %v, want an error about %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, nil, &out, &out); err != nil || !strings.HasPrefix(out.String(), "posd ") {
		t.Errorf("-version: %v %q", err, out.String())
	}
}

// TestDemoBannerCurlWorks runs posd -demo and sends the banner's own curl request
// (token and content type as printed) to it.
func TestDemoBannerCurlWorks(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		done <- run(ctx, []string{"-demo", "-api", "127.0.0.1:0", "-log-level", "error"}, pr, out, io.Discard)
	}()
	var b string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b = out.String(); strings.Contains(b, "Ctrl-C stops") {
			break
		}
	}
	m := regexp.MustCompile(`curl -s -X POST (\S+)/v1/sales \\\n\s+-H "Authorization: Bearer (\S+)" \\\n\s+-H '(Content-Type: application/json)'`).FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("no curl example in the banner:\n%s", b)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "demo", "admin.token"))
	if err != nil || strings.TrimSpace(string(tok)) != m[2] {
		t.Fatalf("banner token %q, admin.token %q %v", m[2], tok, err)
	}
	req, _ := http.NewRequest("POST", m[1]+"/v1/sales", strings.NewReader(`{"amount_minor": 12000, "currency": "KRW"}`))
	req.Header.Set("Authorization", "Bearer "+m[2])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the banner's request: %d", resp.StatusCode)
	}
	cancel()
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("posd -demo: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("posd -demo did not stop")
	}
}

type lockedBuffer struct {
	mu stdsync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
