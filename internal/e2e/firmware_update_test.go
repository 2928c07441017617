package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/firmware"
)

// buildPosd builds posd with main.version set, into dir.
func buildPosd(t *testing.T, dir, version string) string {
	t.Helper()
	bin := filepath.Join(dir, "posd-"+version)
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", bin, "../../cmd/posd")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build posd %s: %v\n%s", version, err, b)
	}
	return bin
}

// packWLF packs files (name → path) as version into a .wlf signed by key.
func packWLF(t *testing.T, key minisign.PrivateKey, path, version, min string, files map[string]string) string {
	t.Helper()
	var pf []firmware.PackFile
	for name, p := range files {
		pf = append(pf, firmware.PackFile{Name: name, Path: p})
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := firmware.Pack(f, key, firmware.Manifest{Version: version, MinVersion: min, Arch: runtime.GOARCH, Board: "counter-test"}, pf); err != nil {
		t.Fatal(err)
	}
	return path
}

// supervisor is the test's stand-in for systemd: before every start it runs the
// real `posctl firmware boot` (ExecStartPre; when it fails, posd is not started and
// the loop tries again after RestartSec, as systemd does), then starts
// SLOTS/current/posd (ExecStart) and starts it again whenever it exits
// (Restart=always), counting the exits with firmware.ExitRestart.
type supervisor struct {
	mu       sync.Mutex
	env      []string  // guarded by mu: added to both commands' environment
	cur      *exec.Cmd // guarded by mu
	starts   int       // guarded by mu
	restarts int       // guarded by mu: exits with ExitRestart
	out      lockedWriter
	cancel   context.CancelFunc
	done     chan struct{}
}

func startSupervisor(t *testing.T, posctl, slots, cfgFile string) *supervisor {
	s := &supervisor{out: lockedWriter{w: new(bytes.Buffer)}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			s.mu.Lock()
			env := append(os.Environ(), s.env...)
			s.mu.Unlock()
			boot := exec.Command(posctl, "firmware", "boot", "-config", cfgFile)
			boot.Stdout, boot.Stderr, boot.Env = &s.out, &s.out, env
			if err := boot.Run(); err != nil {
				fmt.Fprintf(&s.out, "supervisor: posctl firmware boot: %v\n", err)
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond): // RestartSec
				}
				continue
			}
			// The scanner: nothing is typed, sales get their codes by API. An *os.File so
			// Wait does not wait for a copying goroutine.
			pr, pw, err := os.Pipe()
			if err != nil {
				fmt.Fprintf(&s.out, "supervisor: pipe: %v\n", err)
				return
			}
			cmd := exec.Command(filepath.Join(slots, "current", "posd"), "-config", cfgFile)
			cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = pr, &s.out, &s.out, env
			err = cmd.Start()
			pr.Close()
			if err != nil {
				pw.Close()
				fmt.Fprintf(&s.out, "supervisor: start: %v\n", err)
				time.Sleep(200 * time.Millisecond)
				continue
			}
			s.mu.Lock()
			s.cur = cmd
			s.starts++
			s.mu.Unlock()
			err = cmd.Wait()
			pw.Close()
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == firmware.ExitRestart {
				s.mu.Lock()
				s.restarts++
				s.mu.Unlock()
				continue
			}
			fmt.Fprintf(&s.out, "supervisor: posd exited: %v\n", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // RestartSec
			}
		}
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("--- supervisor and posd output:\n%s", s.out.String())
		}
	})
	return s
}

func (s *supervisor) stop() {
	s.cancel()
	for {
		s.mu.Lock()
		c := s.cur
		s.mu.Unlock()
		if c != nil && c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-s.done:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// seller makes sales through the API while updates run: each is created, given a
// wallet code by the API and followed to its end. Refusals while posd updates or
// restarts are retried later.
type seller struct {
	api  string
	mu   sync.Mutex
	ids  []string          // guarded by mu: every sale the API created
	ends map[string]string // guarded by mu: id → final status
	stop chan struct{}
	done chan struct{}
	busy int // guarded by mu: 503 answers (updating)
}

func startSeller(api string) *seller {
	s := &seller{api: api, ends: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			s.sell(1000+int64(i), fmt.Sprintf("28%016d", 1234567890000000+i))
		}
	}()
	return s
}

func (s *seller) call(method, path, body string) (int, map[string]any, error) {
	req, _ := http.NewRequest(method, s.api+path, strings.NewReader(body))
	authorize(req)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// sell makes one sale paid with code (one-time wallet codes: each sale its own).
func (s *seller) sell(amount int64, walletCode string) {
	code, sale, err := s.call("POST", "/v1/sales", fmt.Sprintf(`{"amount_minor": %d, "currency": "KRW"}`, amount))
	if err != nil || code != 201 {
		if code == 503 {
			s.mu.Lock()
			s.busy++
			s.mu.Unlock()
		}
		return
	}
	id, _ := sale["id"].(string)
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
	// The code goes in until the sale leaves waiting_for_code (a restart in between
	// is retried: the sale is durable).
	for i := 0; i < 600; i++ {
		c, m, err := s.call("GET", "/v1/sales/"+id, "")
		if err == nil && c == 200 {
			st, _ := m["status"].(string)
			switch st {
			case "waiting_for_code":
				s.call("POST", "/v1/sales/"+id+"/code", `{"code": "`+walletCode+`"}`)
			case "approved", "declined", "refused", "cancelled", "stored_offline", "failed":
				s.mu.Lock()
				s.ends[id] = st
				s.mu.Unlock()
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *seller) halt() {
	close(s.stop)
	<-s.done
}

func firmwareStatus(t *testing.T, api string) (string, firmware.State) {
	t.Helper()
	req, _ := http.NewRequest("GET", api+"/v1/firmware", nil)
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", firmware.State{}
	}
	defer resp.Body.Close()
	var v struct {
		Running string         `json:"running"`
		State   firmware.State `json:"state"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Running, v.State
}

// TestFirmwareTwoBuildsSwitchCommitAndRollBack runs two real builds of posd (1.0.0
// and 2.0.0) under a supervisor that does what the systemd unit does, with a posgw
// and a seller making sales the whole time:
//   - 2.0.0 on trial cannot reach the broker (the link is stalled): its health check
//     fails within verify_timeout and 1.0.0 runs again;
//   - a build that exits at start (packed as 1.5.0) crash-loops and rolls back by
//     itself after max_attempts starts;
//   - 2.0.0 flashed with posctl flash switches, passes its health check and commits.
//
// Afterwards every sale the API accepted is in posgw's ledger exactly once and no
// sale is there that the API did not accept.
func TestFirmwareTwoBuildsSwitchCommitAndRollBack(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	bins := build(t, dir, "posctl")
	v1, v2 := buildPosd(t, dir, "1.0.0"), buildPosd(t, dir, "2.0.0")

	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gw := startGateways(t, b.URL(), 1)
	link := newProxy(t, b.Addr()) // posd's way to the broker, stalled to fail a health check

	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	slots := filepath.Join(dir, "slots")
	if err := (firmware.Files{Dir: slots}).Init(v1); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + apiAddr
	registerAPI(api, data)
	cfg := map[string]any{
		"version": 1, "device_id": "counter-fw", "data_dir": data,
		"api":     map[string]any{"addr": apiAddr},
		"mqtt":    map[string]any{"broker": link.URL()},
		"scanner": map[string]any{"source": "stdin"},
		"fleet":   map[string]any{"trusted_keys": []string{pub.String()}},
		"firmware": map[string]any{"slots_dir": slots, "board": "counter-test", "verify_timeout": "4s",
			"max_attempts": 3, "max_wait": "1m"},
	}
	cfgFile := filepath.Join(dir, "posd.json")
	cb, _ := json.Marshal(cfg)
	os.WriteFile(cfgFile, cb, 0o600)

	sup := startSupervisor(t, bins["posctl"], slots, cfgFile)
	waitRunning := func(version string) firmware.State {
		t.Helper()
		var st firmware.State
		waitFor(t, "posd "+version+" running with no update in progress", 90*time.Second, func() bool {
			var run string
			run, st = firmwareStatus(t, api)
			return run == version && st.Update == nil
		})
		return st
	}
	waitRunning("1.0.0")
	flash := func(file string) (string, error) {
		out, err := exec.Command(bins["posctl"], "flash", "-yes", "-api", api, "-data", data, file).CombinedOutput()
		return string(out), err
	}

	// 1. 2.0.0 that cannot reach the broker rolls back on its health check.
	wlf2 := packWLF(t, priv, filepath.Join(dir, "posd-2.0.0.wlf"), "2.0.0", "1.0.0", map[string]string{"posd": v2})
	link.stall(true)
	link.cut()
	out, err := flash(wlf2)
	if err == nil || !strings.Contains(out, "rolled back") || !strings.Contains(out, "broker") {
		t.Fatalf("flash of 2.0.0 without a broker: %v\n%s", err, out)
	}
	st := waitRunning("1.0.0")
	if st.Last == nil || st.Last.Result != firmware.ResultFailed || st.Floor != "" || st.Slot != firmware.SlotA {
		t.Fatalf("after the health rollback: %+v %+v", st, st.Last)
	}
	link.stall(false)
	link.cut()

	sales := startSeller(api)
	waitFor(t, "a first sale approved", 60*time.Second, func() bool {
		sales.mu.Lock()
		defer sales.mu.Unlock()
		for _, s := range sales.ends {
			if s == "approved" {
				return true
			}
		}
		return false
	})

	// 2. A build that exits at start rolls back after max_attempts starts.
	script := filepath.Join(dir, "exit-at-start")
	os.WriteFile(script, []byte("#!/bin/sh\necho 'posd 1.5.0: cannot start' >&2\nexit 3\n"), 0o755)
	wlf15 := packWLF(t, priv, filepath.Join(dir, "posd-1.5.0.wlf"), "1.5.0", "", map[string]string{"posd": script})
	out, err = flash(wlf15)
	if err == nil || !strings.Contains(out, "stopped 3 times") {
		t.Fatalf("flash of a build that exits at start: %v\n%s", err, out)
	}
	st = waitRunning("1.0.0")
	if st.Slot != firmware.SlotA {
		t.Fatalf("after the crash-loop rollback: %+v", st)
	}

	// 3. 2.0.0 with the broker reachable switches and commits.
	out, err = flash(wlf2)
	if err != nil || !strings.Contains(out, "committed: the terminal runs 2.0.0") || !strings.Contains(out, "terminal runs  1.0.0") {
		t.Fatalf("flash of 2.0.0: %v\n%s", err, out)
	}
	st = waitRunning("2.0.0")
	if st.Slot != firmware.SlotB || st.Floor != "1.0.0" || st.Version != "2.0.0" {
		t.Fatalf("after the commit: %+v", st)
	}
	// The floor now refuses what is below it, and nothing changes.
	wlf09 := packWLF(t, priv, filepath.Join(dir, "posd-0.9.wlf"), "0.9", "", map[string]string{"posd": v1})
	out, err = flash(wlf09)
	if err == nil || !strings.Contains(out, "below the device's version floor") {
		t.Fatalf("flash below the floor: %v\n%s", err, out)
	}

	// Let the seller sell on 2.0.0 for a moment, then check the ledger.
	sales.mu.Lock()
	before := len(sales.ids)
	sales.mu.Unlock()
	waitFor(t, "sales on 2.0.0", 60*time.Second, func() bool {
		sales.mu.Lock()
		defer sales.mu.Unlock()
		return len(sales.ends) >= before+3
	})
	sales.halt()
	sales.mu.Lock()
	ids, ends, busy := append([]string(nil), sales.ids...), sales.ends, sales.busy
	sales.mu.Unlock()
	for _, id := range ids {
		if ends[id] != "approved" {
			t.Errorf("sale %s ended %q", id, ends[id])
		}
	}
	waitFor(t, "every sale in the ledger", 60*time.Second, func() bool { return len(gw.entries(t)) >= len(ids) })
	entries := gw.entries(t)
	seen := map[string]bool{}
	for _, id := range ids {
		if _, ok := entries[id]; !ok {
			t.Errorf("sale %s is not in posgw's ledger", id)
		}
		if seen[id] {
			t.Errorf("sale %s was accepted twice", id)
		}
		seen[id] = true
	}
	for k, e := range entries {
		if !seen[k] || e.Device != "counter-fw" {
			t.Errorf("ledger entry %s (%s) is no sale the API accepted", k, e.Device)
		}
	}
	sup.mu.Lock()
	starts, restarts := sup.starts, sup.restarts
	sup.mu.Unlock()
	t.Logf("%d sales made during the rollouts, all in the ledger once; %d refused with 503 while updating; posd started %d times, %d exits for a restart", len(ids), busy, starts, restarts)
	if len(ids) < 5 {
		t.Errorf("only %d sales were made", len(ids))
	}
}
