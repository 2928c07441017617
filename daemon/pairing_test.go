package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/apispec"
	"github.com/walletless/walletless/internal/sdnotify"
	"github.com/walletless/walletless/pairing"
)

// lockedBuffer is a log sink tests read while posd writes.
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

// testFleet is a fleet key, a CA and the reference signer behind an HTTPS server.
type testFleet struct {
	pub     minisign.PublicKey
	priv    minisign.PrivateKey
	caFP    string
	url     string
	secrets string
}

func newTestFleet(t *testing.T) *testFleet {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := pairing.NewCA("fleet CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, sk, err := pairing.IssueServer(ca, caKey, []string{"127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(t.TempDir(), "secrets.json")
	srv := httptest.NewUnstartedServer(&pairing.Signer{CA: ca, CAKey: caKey, Secrets: secrets})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{sc.Raw, ca.Raw}, PrivateKey: sk}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &testFleet{pub: pub, priv: priv, caFP: pairing.Fingerprint(ca.Raw), url: srv.URL, secrets: secrets}
}

// qr provisions a pairing QR for device, signed by key, valid from now for ttl.
func (f *testFleet) qr(t *testing.T, key minisign.PrivateKey, device string, now time.Time, ttl time.Duration) (string, pairing.Payload) {
	t.Helper()
	p, err := pairing.NewPayload(pairing.Payload{DeviceID: device, Broker: "ssl://127.0.0.1:1", Groups: []string{"north"},
		CAFingerprint: f.caFP, EnrollURL: f.url}, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := pairing.AddRecord(f.secrets, pairing.RecordFor(p)); err != nil {
		t.Fatal(err)
	}
	text, err := pairing.Sign(key, p)
	if err != nil {
		t.Fatal(err)
	}
	return text, p
}

// unpairedPosd runs posd from a packaged-style configuration: no device id.
type unpairedPosd struct {
	t     *testing.T
	scan  *io.PipeWriter
	ready chan Info
	done  chan error
	stop  context.CancelFunc
	logs  *lockedBuffer
	dir   string
}

func startUnpaired(t *testing.T, dir string, keys []string) (*unpairedPosd, Info) {
	t.Helper()
	cfg := config.Default()
	cfg.DeviceID = ""
	cfg.DataDir = filepath.Join(dir, "posd")
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Scanner.Source = "stdin"
	cfg.Scanner.MaxLine = 2048
	cfg.Scanner.Dedup = 0
	cfg.Printer.Target = "emulator:" + filepath.Join(dir, "receipts")
	cfg.Fleet.TrustedKeys = keys
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	u := &unpairedPosd{t: t, scan: pw, ready: make(chan Info, 2), done: make(chan error, 1), stop: cancel, logs: &lockedBuffer{}, dir: dir}
	log := slog.New(slog.NewTextHandler(u.logs, nil))
	go func() {
		u.done <- Run(ctx, Options{Config: cfg, Stdin: pr, Version: "test", Log: log, Ready: func(i Info) { u.ready <- i }})
	}()
	return u, u.waitReady()
}

func (u *unpairedPosd) waitReady() Info {
	u.t.Helper()
	select {
	case i := <-u.ready:
		return i
	case err := <-u.done:
		u.t.Fatalf("posd stopped: %v", err)
	case <-time.After(30 * time.Second):
		u.t.Fatal("posd did not become ready")
	}
	return Info{}
}

func (u *unpairedPosd) shutdown() {
	u.stop()
	u.scan.Close()
	select {
	case err := <-u.done:
		if err != nil {
			u.t.Errorf("posd stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		u.t.Error("posd did not stop within 20s")
	}
}

func (u *unpairedPosd) feed(text string) {
	u.t.Helper()
	if _, err := io.WriteString(u.scan, text+"\r\n"); err != nil {
		u.t.Fatal(err)
	}
}

// slip returns the text of the emulator jobs whose names start with prefix.
func (u *unpairedPosd) slip(prefix string) string {
	bins, _ := filepath.Glob(filepath.Join(u.dir, "receipts", prefix+"*.bin"))
	var all strings.Builder
	for _, b := range bins {
		data, _ := os.ReadFile(b)
		all.Write(data)
	}
	return all.String()
}

// get reads a JSON answer, checking it against docs/api.yaml.
func getChecked(t *testing.T, spec *apispec.Spec, method, template, url, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(`{"amount_minor":100,"currency":"KRW"}`))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if spec != nil {
		if err := spec.Check(method, template, resp.StatusCode, mt, raw); err != nil {
			t.Error(err)
		}
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// waitFor polls cond until it holds (no timing assertion: a generous bound only).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestUnpairedTerminalPairsByScanningTheQR(t *testing.T) {
	spec, err := apispec.Load(filepath.Join("..", "docs", "api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := newTestFleet(t)
	dir := t.TempDir()
	u, info := startUnpaired(t, dir, []string{f.pub.String()})
	if info.DeviceID != "" {
		t.Fatalf("unpaired Ready names device %q", info.DeviceID)
	}
	// Status, page config and a sale: unpaired, said clearly.
	code, st := getChecked(t, spec, "GET", "/v1/status", info.APIURL+"/v1/status", "")
	if code != 200 || st["state"] != "unpaired" {
		t.Fatalf("status %d %v", code, st)
	}
	code, m := getChecked(t, spec, "POST", "/v1/sales", info.APIURL+"/v1/sales", info.Token)
	if code != http.StatusServiceUnavailable || !strings.Contains(m["error"].(string), "not paired") {
		t.Fatalf("sale while unpaired: %d %v", code, m)
	}
	_, conf := getChecked(t, nil, "GET", "", info.APIURL+"/config.json", "")
	if conf["unpaired"] == nil {
		t.Fatalf("page config does not say unpaired: %v", conf)
	}
	waitFor(t, "the unpaired slip", func() bool { return strings.Contains(u.slip("unpaired-"), "Not paired yet") })

	lastError := func() string {
		_, st := getChecked(t, nil, "GET", "", info.APIURL+"/v1/status", "")
		p, _ := st["pairing"].(map[string]any)
		s, _ := p["last_error"].(string)
		return s
	}
	nothingWritten := func() {
		t.Helper()
		for _, name := range []string{pairing.StateFile, pairing.KeyFile, pairing.CertFile, pairing.CAFile} {
			if _, err := os.Stat(filepath.Join(dir, "posd", name)); err == nil {
				t.Fatalf("%s written by a refused pairing", name)
			}
		}
	}
	// Forged: signed by a key the terminal does not trust.
	_, otherKey, _ := minisign.GenerateKey(nil)
	forged, _ := f.qr(t, otherKey, "shop-1", time.Now(), time.Hour)
	u.feed(forged)
	waitFor(t, "the forged QR refused", func() bool { return strings.Contains(lastError(), "does not trust") })
	// Edited: the payload of another QR under a good signature.
	good, gp := f.qr(t, f.priv, "shop-1", time.Now(), time.Hour)
	other, _ := f.qr(t, f.priv, "shop-2", time.Now(), time.Hour)
	gparts := strings.Split(good, ".")
	oparts := strings.Split(other, ".")
	u.feed(oparts[0] + "." + gparts[1] + "." + gparts[2])
	waitFor(t, "the edited QR refused", func() bool { return strings.Contains(lastError(), "forged") })
	// Expired: the device refuses it when its clock is synced, the signer otherwise.
	expired, _ := f.qr(t, f.priv, "shop-3", time.Now().Add(-2*time.Hour), time.Hour)
	u.feed(expired)
	waitFor(t, "the expired QR refused", func() bool { return strings.Contains(lastError(), "expired") })
	// A wrong CA pin (a man in the middle, or another fleet's CA): refused at
	// enrollment, before the secret is sent.
	otherCA, _, err := pairing.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := pairing.NewPayload(pairing.Payload{DeviceID: "shop-5", Broker: "ssl://127.0.0.1:1", CAFingerprint: pairing.Fingerprint(otherCA.Raw), EnrollURL: f.url}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mitm, err := pairing.Sign(f.priv, mp)
	if err != nil {
		t.Fatal(err)
	}
	u.feed(mitm)
	waitFor(t, "the wrong CA pin refused", func() bool { return strings.Contains(lastError(), "enrollment server not trusted") })
	// A payment code while unpaired.
	u.feed("281234567890123456")
	waitFor(t, "the payment code refused", func() bool { return strings.Contains(lastError(), "not paired yet") })
	nothingWritten()
	waitFor(t, "the refusal slips", func() bool {
		s := u.slip("pairing-refused-")
		return strings.Contains(s, "Pairing refused") && strings.Contains(s, "expired") && strings.Contains(s, "forged")
	})

	// The good QR pairs the terminal, which then sells under its new id.
	u.feed(good)
	paired := u.waitReady()
	if paired.DeviceID != "shop-1" {
		t.Fatalf("paired as %q", paired.DeviceID)
	}
	code, st = getChecked(t, spec, "GET", "/v1/status", paired.APIURL+"/v1/status", paired.Token)
	if code != 200 || st["state"] != "selling" || st["device_id"] != "shop-1" {
		t.Fatalf("paired status %d %v", code, st)
	}
	if g, _ := st["groups"].([]any); len(g) != 1 || g[0] != "north" {
		t.Fatalf("groups %v", st["groups"])
	}
	slip := u.slip("paired-")
	if !strings.Contains(slip, "Device: shop-1") || !strings.Contains(slip, "Certificate SHA-256") || strings.Contains(slip, gp.Secret) {
		t.Fatalf("paired slip: %q", slip)
	}
	for _, name := range []string{pairing.StateFile, pairing.KeyFile, pairing.CertFile, pairing.CAFile} {
		fi, err := os.Stat(filepath.Join(dir, "posd", name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}
	// A paired terminal ignores pairing QRs, and never hands them to the sale engine.
	u.feed(other)
	waitFor(t, "the QR ignored", func() bool { return strings.Contains(u.logs.String(), "already paired") })
	u.shutdown()
	for _, s := range []string{gp.Secret, good} {
		if strings.Contains(u.logs.String(), s) {
			t.Fatal("the log holds a pairing secret")
		}
	}

	// A restart comes up paired.
	u2, info2 := startUnpaired(t, dir, []string{f.pub.String()})
	if info2.DeviceID != "shop-1" {
		t.Fatalf("after a restart: device %q", info2.DeviceID)
	}
	u2.shutdown()

	// After a reset the used QR is still refused (this terminal's record).
	if err := pairing.Reset(filepath.Join(dir, "posd")); err != nil {
		t.Fatal(err)
	}
	u3, info3 := startUnpaired(t, dir, []string{f.pub.String()})
	if info3.DeviceID != "" {
		t.Fatalf("after a reset: device %q", info3.DeviceID)
	}
	u3.feed(good)
	waitFor(t, "the used QR refused", func() bool {
		_, st := getChecked(t, nil, "GET", "", info3.APIURL+"/v1/status", "")
		p, _ := st["pairing"].(map[string]any)
		s, _ := p["last_error"].(string)
		return strings.Contains(s, "used on this terminal before")
	})
	u3.shutdown()
}

func TestUnpairedWithoutFleetKeySaysSo(t *testing.T) {
	dir := t.TempDir()
	u, info := startUnpaired(t, dir, nil)
	defer u.shutdown()
	_, st := getChecked(t, nil, "GET", "", info.APIURL+"/v1/status", "")
	p, _ := st["pairing"].(map[string]any)
	if p["trusted_keys"] != float64(0) || !strings.Contains(strings.Join(strings.Fields(func() string { b, _ := json.Marshal(p["needs"]); return string(b) }()), " "), "fleet key") {
		t.Fatalf("status without a fleet key: %v", st)
	}
	waitFor(t, "the slip", func() bool { return strings.Contains(u.slip("unpaired-"), "fleet key") })
}

// TestUnpairedSystemdNotify: an unpaired terminal tells systemd it is ready once its
// API listens and pings the watchdog from the loop that waits for the pairing QR
// (Type=notify and WatchdogSec= must not restart a box waiting to be paired).
func TestUnpairedSystemdNotify(t *testing.T) {
	n, c := notifySocket(t)
	cfg := config.Default()
	cfg.DeviceID = ""
	cfg.DataDir = filepath.Join(t.TempDir(), "posd")
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Printer.Target = "none"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan Info, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Version: "test", Stdin: blockingReader{ctx}, Notify: n, Watchdog: 200 * time.Millisecond,
			Ready: func(i Info) { ready <- i }})
	}()
	if got := readNotify(t, c); got != sdnotify.Ready {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if i := <-ready; i.DeviceID != "" {
		t.Fatalf("ready as %q", i.DeviceID)
	}
	for i := 0; i < 3; i++ {
		if got := readNotify(t, c); got != sdnotify.Watchdog {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for {
		got := readNotify(t, c)
		if got == sdnotify.Stopping {
			break
		}
		if got != sdnotify.Watchdog {
			t.Fatalf("notification %q at the end, want STOPPING=1", got)
		}
	}
}
