package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/daemon"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/gateway"
)

// TestFirmwareKilledInEachState is the table test of the issue (as Mender's): for
// every crash point of an update — each step of the state machine right after it
// is persisted and before it acts, and the windows between an action and the state
// that records it (firmware.HookPoints, the trial's health check, the installed
// payloads) — a terminal running real posd 1.0.0 under the systemd-like supervisor
// (`posctl firmware boot`, then current/posd) is updated to a real posd 2.0.0; the
// process that reaches the point (posd, or posctl firmware boot) is paused there by
// daemon.TestPauseEnv and killed with SIGKILL; the supervisor goes on without the
// pause. Every time, the terminal comes back on a working slot with no update in
// progress (2.0.0 when the update can still finish, 1.0.0 when it was rolling
// back), answers /v1/status, and sells a sale that reaches posgw's ledger exactly
// once.
func TestFirmwareKilledInEachState(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	bins := build(t, dir, "posctl", "posfleet")
	v1, v2 := buildPosd(t, dir, "1.0.0"), buildPosd(t, dir, "2.0.0")
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gw := startGateways(t, b.URL(), 1)
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "posfleet.key")
	kt, _ := priv.MarshalText()
	os.WriteFile(keyFile, append(kt, '\n'), 0o600)
	wlf2 := packWLF(t, priv, filepath.Join(dir, "posd-2.0.0.wlf"), "2.0.0", "1.0.0", map[string]string{"posd": v2})
	script := filepath.Join(dir, "exit-at-start")
	os.WriteFile(script, []byte("#!/bin/sh\necho 'posd 1.5.0: cannot start' >&2\nexit 3\n"), 0o755)
	wlfCrash := packWLF(t, priv, filepath.Join(dir, "posd-1.5.0.wlf"), "1.5.0", "", map[string]string{"posd": script})
	files := &rangeLog{path: wlf2}
	srv := httptest.NewServer(files)
	defer srv.Close()

	// how: flash (posctl flash), job (posfleet firmware rollout), crash (flash of a
	// build that exits at start), sick (flash of 2.0.0 while the broker is not
	// reachable: its health check fails).
	cases := []struct {
		pause, how, want string
	}{
		{"posd:download", "job", "2.0.0"},
		{"posd:verify", "flash", "2.0.0"},
		{"posd:install", "flash", "2.0.0"},   // the store snapshot and payloads not written yet
		{"posd:install#2", "flash", "2.0.0"}, // the payloads in slot b, the state not updated
		{"posd:switch", "flash", "2.0.0"},
		{"posd:" + firmware.HookSwitchLinked, "flash", "2.0.0"},
		{"posd:verify_new", "flash", "2.0.0"},   // switched, before posd exits for the restart
		{"posctl:verify_new", "flash", "2.0.0"}, // posctl firmware boot counted the trial's start
		{"posd:trial", "flash", "2.0.0"},        // 2.0.0 runs on trial, health not yet checked
		{"posd:commit", "flash", "2.0.0"},
		{"posd:" + firmware.HookCommitSlot, "flash", "2.0.0"},
		{"posd:rollback", "sick", "1.0.0"},    // 2.0.0 failed its health check and asked for a rollback
		{"posctl:rollback", "crash", "1.0.0"}, // posctl firmware boot rolls back a crash loop
		{"posctl:" + firmware.HookRollbackSlot, "crash", "1.0.0"},
		{"posctl:" + firmware.HookRollbackRestored, "crash", "1.0.0"},
	}
	var sold []string
	for i, tc := range cases {
		t.Run(strings.ReplaceAll(tc.pause, ":", "_"), func(t *testing.T) {
			dev := fmt.Sprintf("kill-%02d", i)
			root := filepath.Join(dir, dev)
			slots, data := filepath.Join(root, "slots"), filepath.Join(root, "data")
			if err := (firmware.Files{Dir: slots}).Init(v1); err != nil {
				t.Fatal(err)
			}
			link := newProxy(t, b.Addr())
			apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			api := "http://" + apiAddr
			registerAPI(api, data)
			cfg := map[string]any{
				"version": 1, "device_id": dev, "data_dir": data,
				"api":     map[string]any{"addr": apiAddr},
				"mqtt":    map[string]any{"broker": link.URL(), "heartbeat": "1s"},
				"scanner": map[string]any{"source": "stdin"},
				"fleet":   map[string]any{"trusted_keys": []string{pub.String()}},
				"firmware": map[string]any{"slots_dir": slots, "board": "counter-test", "verify_timeout": "4s",
					"max_attempts": 3, "max_wait": "1m"},
			}
			cfgFile := filepath.Join(root, "posd.json")
			cb, _ := json.Marshal(cfg)
			os.WriteFile(cfgFile, cb, 0o600)
			sup := startSupervisor(t, bins["posctl"], slots, cfgFile)
			waitFor(t, dev+" runs 1.0.0 online", 90*time.Second, func() bool {
				code, st := getJSONQuiet(api + "/v1/status")
				return code == 200 && st["version"] == "1.0.0" && st["online"] == true
			})
			sup.mu.Lock()
			sup.env = []string{daemon.TestPauseEnv + "=" + tc.pause}
			sup.mu.Unlock()
			// The supervisor's next start takes the pause; posd 1.0.0 is already running
			// without it, so restart it with it.
			sup.mu.Lock()
			starts := sup.starts
			sup.cur.Process.Signal(syscall.SIGTERM)
			sup.mu.Unlock()
			waitFor(t, dev+" runs 1.0.0 again, to pause at "+tc.pause, 60*time.Second, func() bool {
				sup.mu.Lock()
				restarted := sup.starts > starts
				sup.mu.Unlock()
				code, st := getJSONQuiet(api + "/v1/status")
				return restarted && code == 200 && st["version"] == "1.0.0" && st["online"] == true
			})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			switch tc.how {
			case "job":
				go exec.CommandContext(ctx, bins["posfleet"], "firmware", "rollout", "-broker", b.URL(), "-key", keyFile,
					"-device", dev, "-url", srv.URL+"/posd-2.0.0.wlf", "-timeout", "3m", wlf2).Run()
			case "flash", "sick", "crash":
				file := wlf2
				if tc.how == "crash" {
					file = wlfCrash
				}
				if tc.how == "sick" {
					link.stall(true)
					link.cut()
				}
				go exec.CommandContext(ctx, bins["posctl"], "flash", "-yes", "-api", api, "-data", data, file).Run()
			}
			paused := filepath.Join(data, daemon.FirmwareDir, daemon.PausedFile)
			var pid int
			waitFor(t, "a process paused at "+tc.pause, 120*time.Second, func() bool {
				b, err := os.ReadFile(paused)
				if err != nil {
					return false
				}
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) != 2 || lines[0] != tc.pause {
					return false
				}
				pid, _ = strconv.Atoi(lines[1])
				return pid > 0
			})
			sup.mu.Lock()
			sup.env = nil
			sup.mu.Unlock()
			os.Remove(paused)
			link.stall(false)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %d: %v", pid, err)
			}
			var st firmware.State
			waitFor(t, dev+" back on "+tc.want+" with no update in progress", 180*time.Second, func() bool {
				var run string
				run, st = firmwareStatus(t, api)
				return run == tc.want && st.Update == nil
			})
			if st.Last == nil {
				t.Fatalf("no outcome recorded: %+v", st)
			}
			wantSlot := firmware.SlotA
			if tc.want == "2.0.0" {
				wantSlot = firmware.SlotB
			}
			if st.Slot != wantSlot {
				t.Errorf("slot %s, want %s: %+v", st.Slot, wantSlot, st)
			}
			if run, _ := (firmware.Files{Dir: slots}).Running(); run != wantSlot {
				t.Errorf("current links %s, want %s", run, wantSlot)
			}
			t.Logf("killed at %s: back on %s (slot %s), last update %s: %s", tc.pause, tc.want, st.Slot, st.Last.Result, st.Last.Reason)
			waitFor(t, dev+" online", 60*time.Second, func() bool {
				code, s := getJSONQuiet(api + "/v1/status")
				return code == 200 && s["online"] == true
			})
			s := &seller{api: api, ends: map[string]string{}}
			s.sell(4200+int64(i), fmt.Sprintf("28%016d", 2234567890000000+i))
			if len(s.ids) != 1 || s.ends[s.ids[0]] != "approved" {
				t.Fatalf("a sale after the kill: %v %v", s.ids, s.ends)
			}
			sold = append(sold, s.ids[0])
		})
	}
	waitFor(t, "every sale in the ledger", 60*time.Second, func() bool { return len(gw.entries(t)) >= len(sold) })
	count := map[string]int{}
	gw.ledger.ForEach(func(e gateway.Entry) error { count[e.Key]++; return nil })
	for _, id := range sold {
		if count[id] != 1 {
			t.Errorf("sale %s is in the ledger %d times", id, count[id])
		}
	}
	if len(count) != len(sold) {
		t.Errorf("the ledger holds %d entries for %d sales", len(count), len(sold))
	}
}
