package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/printer"
)

// statusPrinter is an ESC/POS network printer that answers DLE EOT with the status
// the test sets and swallows everything else; unplug closes its port.
type statusPrinter struct {
	ln     net.Listener
	mu     sync.Mutex
	status printer.Status // guarded by mu
}

func startStatusPrinter(t *testing.T) *statusPrinter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &statusPrinter{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *statusPrinter) serve(c net.Conn) {
	defer c.Close()
	var pend []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		pend = append(pend, buf[:n]...)
		for len(pend) >= 3 {
			if pend[0] == 0x10 && pend[1] == 0x04 {
				p.mu.Lock()
				b1, b2, b4 := printer.EncodeStatus(p.status)
				p.mu.Unlock()
				c.Write([]byte{map[byte]byte{1: b1, 2: b2, 4: b4}[pend[2]]})
				pend = pend[3:]
				continue
			}
			pend = pend[1:]
		}
		if err != nil {
			return
		}
	}
}

func (p *statusPrinter) set(s printer.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = s
}

// TestFirmwareTrialComparesThePrinter: posd records the printer's own status before
// it switches (a network printer answering DLE EOT with paper in), and the new
// version on trial must find the printer at least as healthy. A printer that ran
// out of paper or was unplugged in between rolls the update back with a reason that
// names the printer; one that still has paper lets it commit.
func TestFirmwareTrialComparesThePrinter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  func(p *statusPrinter)
		commit bool
		reason string
	}{
		{"paper still in", func(*statusPrinter) {}, true, ""},
		{"paper out", func(p *statusPrinter) { p.set(printer.Status{PaperOut: true}) }, false, "the printer was ready before the update and is not ready now (offline, paper out)"},
		{"unplugged", func(p *statusPrinter) { p.ln.Close() }, false, "the printer was ready before the update and is unreachable now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := broker.Start("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			prn := startStatusPrinter(t)
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
				c.Firmware.VerifyTimeout = config.Duration(3 * time.Second)
				c.Printer.Target = "tcp:" + prn.ln.Addr().String()
			}
			tp := startPosd(t, dir, b.URL(), false, adjust)
			defer tp.scan.Close()
			f, _ := os.Create(filepath.Join(usb, ".part"))
			if _, err := firmware.Pack(f, priv, firmware.Manifest{Version: "2.0", Arch: runtime.GOARCH, Board: "any"}, []firmware.PackFile{{Name: "posd", Path: old}}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			os.Rename(f.Name(), filepath.Join(usb, "posd-2.0.wlf"))
			select {
			case err := <-tp.done:
				if !errors.Is(err, ErrRestart) {
					t.Fatalf("posd ended with %v, want ErrRestart", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("posd did not switch")
			}
			cfg := config.Default()
			cfg.DataDir = filepath.Join(dir, "posd")
			adjust(&cfg)
			m, _, err := OpenFirmware(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if u := m.State().Update; u == nil || u.Before.PrinterState != firmware.PrinterOK || !u.Before.Printer {
				t.Fatalf("the printer's health before the switch was not recorded: %+v", u)
			}
			tc.after(prn)
			if a, err := m.Boot(context.Background()); err != nil || !a.Trial {
				t.Fatalf("boot: %+v %v", a, err)
			}
			cfg.API.Addr = "127.0.0.1:0"
			cfg.MQTT.Broker = b.URL()
			cfg.DeviceID = "shop-7"
			cfg.Scanner.Source = "stdin"
			pr, pw := io.Pipe()
			defer pw.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, Options{Config: cfg, Stdin: pr, Version: "2.0"}) }()
			deadline := time.After(60 * time.Second)
			for {
				m, _, err := OpenFirmware(cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				st := m.State()
				if tc.commit && st.Last != nil {
					if st.Last.Result != firmware.ResultSucceeded {
						t.Fatalf("the trial with a healthy printer ended %+v", st.Last)
					}
					cancel()
					if err := <-done; err != nil {
						t.Fatalf("posd 2.0 stopped with %v", err)
					}
					return
				}
				if !tc.commit && st.Update != nil && st.Update.Step == firmware.StepRollback {
					if !strings.Contains(st.Update.Reason, tc.reason) {
						t.Fatalf("rollback reason %q does not say %q", st.Update.Reason, tc.reason)
					}
					select {
					case err := <-done:
						if !errors.Is(err, ErrRestart) {
							t.Fatalf("posd on trial ended with %v, want ErrRestart", err)
						}
					case <-time.After(30 * time.Second):
						t.Fatal("posd on trial did not exit for the rollback")
					}
					return
				}
				select {
				case err := <-done:
					m, _, _ := OpenFirmware(cfg, nil)
					st := m.State()
					if tc.commit || !errors.Is(err, ErrRestart) || st.Update == nil || st.Update.Step != firmware.StepRollback {
						t.Fatalf("posd 2.0 ended with %v; state %+v %+v", err, st.Update, st.Last)
					}
					if !strings.Contains(st.Update.Reason, tc.reason) {
						t.Fatalf("rollback reason %q does not say %q", st.Update.Reason, tc.reason)
					}
					t.Logf("rolled back: %s", st.Update.Reason)
					return
				case <-deadline:
					t.Fatalf("the trial did not end: %+v %+v", st.Update, st.Last)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}
