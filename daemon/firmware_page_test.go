package daemon

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/chromedp/chromedp"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/firmware"
)

// TestFirmwarePageSaysUpdating: while a new version runs on trial (its health check cannot
// pass: the broker is unreachable) the counter page in a real browser says it is
// updating to that version and for about how long, counting down from
// updating.estimate_seconds, and a sale is refused (503) meanwhile.
func TestFirmwarePageSaysUpdating(t *testing.T) {
	ctx := browser(t)
	dir := t.TempDir()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	slots := filepath.Join(dir, "slots")
	old := filepath.Join(dir, "posd-old")
	os.WriteFile(old, []byte("old posd"), 0o755)
	if err := (firmware.Files{Dir: slots}).Init(old); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "posd")
	cfg.Fleet.TrustedKeys = []string{pub.String()}
	cfg.Firmware.SlotsDir = slots
	cfg.Firmware.VerifyTimeout = config.Duration(90 * time.Second)
	m, _, err := OpenFirmware(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	wlf := filepath.Join(dir, "posd-2.0.wlf")
	f, _ := os.Create(wlf)
	if _, err := firmware.Pack(f, priv, firmware.Manifest{Version: "2.0", Arch: runtime.GOARCH, Board: "any"}, []firmware.PackFile{{Name: "posd", Path: old}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := m.Begin(firmware.Update{ID: "flash-1", Source: "flash", File: wlf}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Switch(firmware.Health{}); err != nil {
		t.Fatal(err)
	}
	if a, err := m.Boot(context.Background()); err != nil || !a.Trial {
		t.Fatalf("boot: %+v %v", a, err)
	}

	cfg.API.Addr = "127.0.0.1:0"
	cfg.MQTT.Broker = "tcp://127.0.0.1:1" // nothing listens: the trial cannot pass
	cfg.DeviceID = "shop-7"
	cfg.Scanner.Source = "stdin"
	cfg.Printer.Target = "none"
	pr, pw := io.Pipe()
	runCtx, cancel := context.WithCancel(context.Background())
	tp := &thinPath{t: t, scan: pw, dir: dir, stop: cancel, done: make(chan error, 1)}
	ready := make(chan Info, 1)
	go func() {
		tp.done <- Run(runCtx, Options{Config: cfg, Stdin: pr, Version: "2.0", Ready: func(i Info) { ready <- i }})
	}()
	select {
	case i := <-ready:
		tp.api, tp.info = i.APIURL, i
	case err := <-tp.done:
		t.Fatalf("posd 2.0 did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("posd 2.0 did not become ready")
	}
	defer func() {
		cancel()
		pw.Close()
		<-tp.done
	}()
	if code, _ := tp.do("POST", "/v1/sales", `{"amount_minor": 5000, "currency": "KRW"}`); code != http.StatusServiceUnavailable {
		t.Fatalf("a sale during the trial: %d, want 503", code)
	}
	signInWithPIN(t, ctx, tp, "Mina", "clerk")
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS("#updating"))); err != nil {
		t.Fatalf("the page never showed the update: %v", err)
	}
	text := get(t, ctx, "banner", chromedp.Text(chromedp.CSS("#updating")))
	step := get(t, ctx, "step", eval[string](`document.getElementById('updating').dataset.step`))
	left, _ := strconv.Atoi(get(t, ctx, "left", eval[string](`document.getElementById('updating').dataset.left`)))
	if !strings.Contains(text, "Updating to version 2.0") || !strings.Contains(text, "sales are paused for about") || step != "verify_new" || left <= 0 || left > 90 {
		t.Fatalf("banner %q step %q left %d", text, step, left)
	}
	shot(t, ctx, artifacts(t), "updating")
	// It counts down between status events.
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	if err := chromedp.Do(cctx, chromedp.Poll[chromedp.Void](`Number(document.getElementById("updating").dataset.left) < `+strconv.Itoa(left))); err != nil {
		t.Errorf("the estimate did not count down from %d s: %v", left, err)
	}
	t.Logf("the page says: %s", text)
}
