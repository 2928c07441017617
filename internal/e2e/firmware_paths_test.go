package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/gateway"
)

// resignWithCLI rewrites the .wlf at src with its manifest signed by the minisign CLI
// with secret key sec (`minisign -S`): the same manifest bytes and payloads, the CLI's
// signature file as the artifact's signature.
func resignWithCLI(t *testing.T, cli, sec, src, dst string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	section := func(name string) []byte {
		var n int
		line, _ := br.ReadString('\n')
		if _, err := fmt.Sscanf(line, name+" %d\n", &n); err != nil {
			t.Fatalf("%s line %q: %v", name, line, err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if line, _ := br.ReadString('\n'); line != firmware.Magic {
		t.Fatalf("magic %q", line)
	}
	mb := section("manifest")
	section("signature")
	payloads, _ := io.ReadAll(br)
	mf := dst + ".manifest"
	os.WriteFile(mf, mb, 0o600)
	if out, err := exec.Command(cli, "-S", "-s", sec, "-m", mf, "-t", "walletless firmware signed by the minisign CLI").CombinedOutput(); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	sig, err := os.ReadFile(mf + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%smanifest %d\n", firmware.Magic, len(mb))
	out.Write(mb)
	fmt.Fprintf(&out, "signature %d\n", len(sig))
	out.Write(sig)
	out.Write(payloads)
	if err := os.WriteFile(dst, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFirmwareMinisignCLIAndTechnicianRollback: a terminal that trusts a key made
// by `minisign -G` installs a .wlf whose manifest the minisign CLI signed with it,
// and refuses one the CLI signed with another key (nothing changes). Then the
// technician rolls the committed 2.0.0 back with `posctl firmware rollback`: the
// terminal runs 1.0.0 again from slot a, the store is kept as it is (the sale made
// on 2.0.0 is still there: the rule for a committed version), and every sale is in
// posgw's ledger exactly once.
func TestFirmwareMinisignCLIAndTechnicianRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cli := need(t, "minisign", "minisign")
	dir := t.TempDir()
	bins := build(t, dir, "posctl")
	v1, v2 := buildPosd(t, dir, "1.0.0"), buildPosd(t, dir, "2.0.0")
	keys := map[string][2]string{}
	for _, name := range []string{"trusted", "other"} {
		pub, sec := filepath.Join(dir, name+".pub"), filepath.Join(dir, name+".key")
		if out, err := exec.Command(cli, "-G", "-W", "-p", pub, "-s", sec).CombinedOutput(); err != nil {
			t.Fatalf("minisign -G: %v\n%s", err, out)
		}
		keys[name] = [2]string{pub, sec}
	}
	pubText, _ := os.ReadFile(keys["trusted"][0])
	trusted := strings.Split(strings.TrimSpace(string(pubText)), "\n")[1]
	_, throwaway, _ := minisign.GenerateKey(rand.Reader)
	plain := packWLF(t, throwaway, filepath.Join(dir, "plain.wlf"), "2.0.0", "1.0.0", map[string]string{"posd": v2})
	good, bad := filepath.Join(dir, "posd-2.0.0-cli.wlf"), filepath.Join(dir, "posd-2.0.0-other.wlf")
	resignWithCLI(t, cli, keys["trusted"][1], plain, good)
	resignWithCLI(t, cli, keys["other"][1], plain, bad)

	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gw := startGateways(t, b.URL(), 1)
	slots, data := filepath.Join(dir, "slots"), filepath.Join(dir, "data")
	if err := (firmware.Files{Dir: slots}).Init(v1); err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + apiAddr
	registerAPI(api, data)
	cfg := map[string]any{
		"version": 1, "device_id": "counter-cli", "data_dir": data,
		"api":     map[string]any{"addr": apiAddr},
		"mqtt":    map[string]any{"broker": b.URL(), "heartbeat": "1s"},
		"scanner": map[string]any{"source": "stdin"},
		"fleet":   map[string]any{"trusted_keys": []string{trusted}},
		"firmware": map[string]any{"slots_dir": slots, "board": "counter-test", "verify_timeout": "10s",
			"max_attempts": 3, "max_wait": "1m"},
	}
	cfgFile := filepath.Join(dir, "posd.json")
	cb, _ := json.Marshal(cfg)
	os.WriteFile(cfgFile, cb, 0o600)
	startSupervisor(t, bins["posctl"], slots, cfgFile)
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
	posctl := func(args ...string) (string, error) {
		out, err := exec.Command(bins["posctl"], args...).CombinedOutput()
		return string(out), err
	}

	out, err := posctl("flash", "-yes", "-api", api, "-data", data, bad)
	if err == nil || !strings.Contains(out, "signed by a key this device does not trust") {
		t.Fatalf("flash of a file the CLI signed with an untrusted key: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(slots, firmware.SlotB, "posd")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused file reached slot b: %v", err)
	}
	out, err = posctl("flash", "-yes", "-api", api, "-data", data, good)
	if err != nil || !strings.Contains(out, "committed: the terminal runs 2.0.0") {
		t.Fatalf("flash of the file the minisign CLI signed: %v\n%s", err, out)
	}
	t.Logf("posctl flash of the CLI-signed file:\n%s", out)
	waitRunning("2.0.0")

	s := &seller{api: api, ends: map[string]string{}}
	waitFor(t, "posd 2.0.0 online", 60*time.Second, func() bool {
		code, st := getJSONQuiet(api + "/v1/status")
		return code == 200 && st["online"] == true
	})
	s.sell(7100, "280000000000007100")
	if len(s.ids) != 1 || s.ends[s.ids[0]] != "approved" {
		t.Fatalf("a sale on 2.0.0: %v %v", s.ids, s.ends)
	}
	on2 := s.ids[0]

	out, err = posctl("firmware", "rollback", "-api", api, "-data", data)
	if err != nil || !strings.Contains(out, "rolled back: the terminal runs 1.0.0") {
		t.Fatalf("posctl firmware rollback: %v\n%s", err, out)
	}
	t.Logf("posctl firmware rollback:\n%s", out)
	st := waitRunning("1.0.0")
	if st.Slot != firmware.SlotA || st.Last == nil || st.Last.Result != firmware.ResultSucceeded || !strings.HasPrefix(st.Last.ID, "rollback-") ||
		st.Previous == nil || st.Previous.Version != "2.0.0" || st.Floor != "1.0.0" {
		t.Fatalf("after the rollback: %+v last %+v previous %+v", st, st.Last, st.Previous)
	}
	out, err = posctl("firmware", "status", "-api", api, "-data", data)
	if err != nil || !strings.Contains(out, "running   1.0.0 (slot a") || !strings.Contains(out, "previous  2.0.0 in slot b") {
		t.Errorf("posctl firmware status: %v\n%s", err, out)
	}
	code, sale := getJSONQuiet(api + "/v1/sales/" + on2)
	if code != 200 || sale["status"] != "approved" {
		t.Errorf("the sale made on 2.0.0, read by 1.0.0 after the rollback: %d %v", code, sale)
	}
	waitFor(t, "posd 1.0.0 online", 60*time.Second, func() bool {
		code, st := getJSONQuiet(api + "/v1/status")
		return code == 200 && st["online"] == true
	})
	s.sell(7200, "280000000000007200")
	if len(s.ids) != 2 || s.ends[s.ids[1]] != "approved" {
		t.Fatalf("a sale on 1.0.0 after the rollback: %v %v", s.ids, s.ends)
	}
	waitFor(t, "both sales in the ledger", 60*time.Second, func() bool { return len(gw.entries(t)) >= 2 })
	count := map[string]int{}
	gw.ledger.ForEach(func(e gateway.Entry) error { count[e.Key]++; return nil })
	if len(count) != 2 || count[s.ids[0]] != 1 || count[s.ids[1]] != 1 {
		t.Errorf("ledger %v for sales %v", count, s.ids)
	}
}

// TestFirmwareRolloutHaltsOnFailedCanary: a rollout to group busan with one canary
// of a build that exits at start: the canary crash-loops, rolls back by itself and
// reports FAILED; posfleet firmware rollout halts with exit code 3 naming the
// canary's reason, clears the job so the rest of the group is never told to update,
// and posfleet firmware status shows why.
func TestFirmwareRolloutHaltsOnFailedCanary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	bins := build(t, dir, "posctl", "posfleet")
	v1 := buildPosd(t, dir, "1.0.0")
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	startGateways(t, b.URL(), 1)
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "posfleet.key")
	kt, _ := priv.MarshalText()
	os.WriteFile(keyFile, append(kt, '\n'), 0o600)
	script := filepath.Join(dir, "exit-at-start")
	os.WriteFile(script, []byte("#!/bin/sh\necho 'posd 1.5.0: cannot start' >&2\nexit 3\n"), 0o755)
	wlf := packWLF(t, priv, filepath.Join(dir, "posd-1.5.0.wlf"), "1.5.0", "", map[string]string{"posd": script})
	srv := httptest.NewServer(&rangeLog{path: wlf})
	defer srv.Close()

	apis := map[string]string{}
	for _, dev := range []string{"busan-1", "busan-2"} {
		root := filepath.Join(dir, dev)
		slots, data := filepath.Join(root, "slots"), filepath.Join(root, "data")
		if err := (firmware.Files{Dir: slots}).Init(v1); err != nil {
			t.Fatal(err)
		}
		apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		apis[dev] = "http://" + apiAddr
		registerAPI(apis[dev], data)
		cfg := map[string]any{
			"version": 1, "device_id": dev, "data_dir": data,
			"api":     map[string]any{"addr": apiAddr},
			"mqtt":    map[string]any{"broker": b.URL(), "heartbeat": "1s"},
			"scanner": map[string]any{"source": "stdin"},
			"fleet":   map[string]any{"trusted_keys": []string{pub.String()}, "groups": []string{"busan"}},
			"firmware": map[string]any{"slots_dir": slots, "board": "counter-test", "verify_timeout": "10s",
				"max_attempts": 3, "max_wait": "1m"},
		}
		cfgFile := filepath.Join(root, "posd.json")
		cb, _ := json.Marshal(cfg)
		os.WriteFile(cfgFile, cb, 0o600)
		startSupervisor(t, bins["posctl"], slots, cfgFile)
	}
	for dev, api := range apis {
		waitFor(t, dev+" runs 1.0.0 online", 90*time.Second, func() bool {
			code, st := getJSONQuiet(api + "/v1/status")
			return code == 200 && st["version"] == "1.0.0" && st["online"] == true
		})
	}
	cmd := exec.Command(bins["posfleet"], "firmware", "rollout", "-broker", b.URL(), "-key", keyFile,
		"-group", "busan", "-url", srv.URL+"/posd-1.5.0.wlf", "-canary", "1", "-wait", "2s", "-timeout", "3m", wlf)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "rollout halted") || !strings.Contains(string(out), "stopped 3 times") {
		t.Fatalf("posfleet firmware rollout of a build that exits at start: %v\n%s", err, out)
	}
	t.Logf("posfleet firmware rollout:\n%s", out)
	canary, rest := "busan-1", "busan-2"
	if !strings.Contains(string(out), "to canaries busan-1") {
		canary, rest = rest, canary
	}
	// The canary rolled back by itself and sells on 1.0.0.
	waitFor(t, canary+" back on 1.0.0", 60*time.Second, func() bool {
		run, st := firmwareStatus(t, apis[canary])
		return run == "1.0.0" && st.Update == nil && st.Last != nil && st.Last.Result == firmware.ResultFailed
	})
	// The job is gone from the group's slot: a device subscribing now gets nothing to
	// start (a retained job is delivered on subscribe).
	watcher := mustConnect(t, b.URL(), "posfleet", "fw-halt-watch")
	watcher.sub(t, firmware.JobPrefix+"groups/busan")
	time.Sleep(2 * time.Second)
	watcher.mu.Lock()
	for _, m := range watcher.in {
		if len(m.Payload()) > 0 {
			t.Errorf("the group's job slot still holds a job after the halt: %s", m.Payload())
		}
	}
	watcher.mu.Unlock()
	// The rest of the group never started it.
	run, st := firmwareStatus(t, apis[rest])
	if run != "1.0.0" || st.Update != nil || st.Last != nil {
		t.Errorf("%s after the halt: running %s, update %+v, last %+v", rest, run, st.Update, st.Last)
	}
	stOut, err := exec.Command(bins["posfleet"], "firmware", "status", "-broker", b.URL()).CombinedOutput()
	if err != nil || !strings.Contains(string(stOut), "FAILED") || !strings.Contains(string(stOut), "stopped 3 times") {
		t.Errorf("posfleet firmware status: %v\n%s", err, stOut)
	}
	for _, line := range strings.Split(string(stOut), "\n") {
		if strings.HasPrefix(line, rest) && strings.Contains(line, "1.5.0") {
			t.Errorf("posfleet firmware status shows %s with the halted job: %s", rest, line)
		}
	}
	t.Logf("posfleet firmware status:\n%s", stOut)
}
