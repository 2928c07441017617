package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/firmware"
)

// TestFirmwareFromUSBSwitchesThenCommits: a signed file dropped into the watched
// directory is verified, installed into slot b and switched to, and posd returns
// ErrRestart; started again as the new version it passes its health check (store,
// broker) and commits.
func TestFirmwareFromUSBSwitchesThenCommits(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	slots, usb := filepath.Join(dir, "slots"), filepath.Join(dir, "usb")
	os.MkdirAll(usb, 0o755)
	old := filepath.Join(dir, "posd-old")
	os.WriteFile(old, []byte("old posd"), 0o755)
	if err := (firmware.Files{Dir: slots}).Init(old); err != nil {
		t.Fatal(err)
	}
	adjust := func(c *config.Config) {
		c.Fleet.TrustedKeys = []string{pub.String()}
		c.Firmware.SlotsDir = slots
		c.Firmware.WatchDir = usb
		c.Firmware.WatchInterval = config.Duration(100 * time.Millisecond)
		c.Firmware.VerifyTimeout = config.Duration(20 * time.Second)
	}
	tp := startPosd(t, dir, b.URL(), false, adjust)
	defer tp.scan.Close()

	newBin := filepath.Join(dir, "posd-new")
	os.WriteFile(newBin, []byte("new posd"), 0o755)
	f, _ := os.Create(filepath.Join(usb, ".posd-2.0.wlf.part"))
	if _, err := firmware.Pack(f, priv, firmware.Manifest{Version: "2.0", MinVersion: "1.0", Arch: runtime.GOARCH, Board: "any"}, []firmware.PackFile{{Name: "posd", Path: newBin}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Rename(f.Name(), filepath.Join(usb, "posd-2.0.wlf")) // the stick shows a whole file
	select {
	case err := <-tp.done:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("posd ended with %v, want ErrRestart", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("posd did not switch to the USB firmware")
	}
	if run, _ := (firmware.Files{Dir: slots}).Running(); run != firmware.SlotB {
		t.Fatalf("current is %s", run)
	}
	if got, _ := os.ReadFile(filepath.Join(slots, "b", "posd")); string(got) != "new posd" {
		t.Fatalf("slot b holds %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "posd", FirmwareDir, firmware.SnapshotFile)); err != nil {
		t.Errorf("no store snapshot before the switch: %v", err)
	}

	// The supervisor's boot step, then the new version starts.
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "posd")
	adjust(&cfg)
	m, _, err := OpenFirmware(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := m.Boot(context.Background()); err != nil || !a.Trial {
		t.Fatalf("boot: %+v %v", a, err)
	}
	cfg.API.Addr = "127.0.0.1:0"
	cfg.MQTT.Broker = b.URL()
	cfg.DeviceID = "shop-7"
	cfg.Scanner.Source = "stdin"
	cfg.Printer.Target = "none"
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan Info, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Stdin: pr, Version: "2.0", Ready: func(i Info) { ready <- i }})
	}()
	var info Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("the new version did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the new version did not become ready")
	}
	deadline := time.Now().Add(30 * time.Second)
	var st struct {
		Running string         `json:"running"`
		State   firmware.State `json:"state"`
	}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", info.APIURL+"/v1/firmware", nil)
		req.Header.Set("Authorization", "Bearer "+info.Token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.State.Last != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.State.Last == nil || st.State.Last.Result != firmware.ResultSucceeded || st.State.Floor != "1.0" || st.Running != "2.0" {
		t.Fatalf("after the trial: %+v last %+v", st, st.State.Last)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("posd 2.0 stopped with %v", err)
	}
}

// TestFirmwareWaitsForTheSaleInProgress: with a sale waiting for its code, an
// update does not install: after max_wait it reports itself deferred; once the sale
// ends it installs and switches.
func TestFirmwareWaitsForTheSaleInProgress(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	slots, usb := filepath.Join(dir, "slots"), filepath.Join(dir, "usb")
	os.MkdirAll(usb, 0o755)
	old := filepath.Join(dir, "posd-old")
	os.WriteFile(old, []byte("old posd"), 0o755)
	if err := (firmware.Files{Dir: slots}).Init(old); err != nil {
		t.Fatal(err)
	}
	// Demo mode: the embedded broker and posgw acknowledge what the sale enqueues.
	tp := startPosd(t, dir, config.Default().MQTT.Broker, true, func(c *config.Config) {
		c.Fleet.TrustedKeys = []string{pub.String()}
		c.Firmware.SlotsDir = slots
		c.Firmware.WatchDir = usb
		c.Firmware.WatchInterval = config.Duration(100 * time.Millisecond)
		c.Firmware.MaxWait = config.Duration(time.Second)
	})
	defer tp.scan.Close()
	code, sale := tp.do("POST", "/v1/sales", `{"amount_minor": 5000, "currency": "KRW"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, sale)
	}
	f, _ := os.Create(filepath.Join(usb, ".part"))
	if _, err := firmware.Pack(f, priv, firmware.Manifest{Version: "2.0", Arch: runtime.GOARCH, Board: "any"}, []firmware.PackFile{{Name: "posd", Path: old}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Rename(f.Name(), filepath.Join(usb, "posd-2.0.wlf"))
	deadline := time.Now().Add(30 * time.Second)
	deferred := false
	for time.Now().Before(deadline) && !deferred {
		_, st := tp.do("GET", "/v1/status", "")
		if u, ok := st["updating"].(map[string]any); ok {
			r, _ := u["reason"].(string)
			deferred = u["step"] == "waiting" && len(r) > 9 && r[:9] == "deferred:"
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !deferred {
		t.Fatal("the update never reported itself deferred behind the waiting sale")
	}
	if run, _ := (firmware.Files{Dir: slots}).Running(); run != firmware.SlotA {
		t.Fatal("installed and switched while a sale waited for its code")
	}
	if code, m := tp.do("POST", "/v1/sales/"+sale["id"].(string)+"/cancel", ""); code != http.StatusOK {
		t.Fatalf("cancel: %d %v", code, m)
	}
	select {
	case err := <-tp.done:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("posd ended with %v, want ErrRestart", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the update did not go on once the sale ended")
	}
	if run, _ := (firmware.Files{Dir: slots}).Running(); run != firmware.SlotB {
		t.Fatalf("current is %s after the switch", run)
	}
}
