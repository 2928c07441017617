package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/conformance"
)

// TestConformanceAgainstPosgwProcess runs `posctl conformance` as a process against
// posgw as a process, through mosquitto with the deploy configuration and ACL (each
// simulated device logs in as itself), with -stop-cmd and -start-cmd scripts that stop
// and start posgw on its ledger, so every scenario runs, the restart included.
func TestConformanceAgainstPosgwProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	m := newMosquitto(t, mosqOpts{persistence: true, users: []string{"conf-1", "conf-1-b"},
		// The kit's requests are malformed on purpose; posgw's answers are checked.
		wireSkip: func(topic string) bool { return !strings.HasSuffix(topic, "/payments/result") }})
	bins := build(t, dir, "posgw", "posctl")
	startSh := filepath.Join(dir, "start-posgw.sh")
	stopSh := filepath.Join(dir, "stop-posgw.sh")
	// start: posgw in the background on its data directory, done once it subscribed.
	os.WriteFile(startSh, []byte(fmt.Sprintf(`#!/bin/sh
log=%[1]s/posgw.$(date +%%s%%N).log
POSGW_MQTT_PASSWORD=%[2]s %[3]s -broker %[4]s -username posgw -data %[1]s/gw -client-id posgw-conf >"$log" 2>&1 &
echo $! >%[1]s/posgw.pid
i=0
until grep -q "gateway subscribed" "$log"; do
	i=$((i+1)); [ $i -gt 400 ] && { cat "$log"; exit 1; }
	sleep 0.05
done
`, dir, password, bins["posgw"], m.URL())), 0o755)
	os.WriteFile(stopSh, []byte(fmt.Sprintf(`#!/bin/sh
pid=$(cat %[1]s/posgw.pid) || exit 1
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
`, dir)), 0o755)
	if out, err := exec.Command(startSh).CombinedOutput(); err != nil {
		t.Fatalf("starting posgw: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(stopSh).Run() })

	cmd := exec.Command(bins["posctl"], "conformance", "-broker", m.URL(), "-device-id", "conf-1", "-device-id2", "conf-1-b",
		"-stop-cmd", stopSh, "-start-cmd", startSh, "-json")
	cmd.Env = append(os.Environ(), "POSCTL_MQTT_PASSWORD="+password)
	out, err := cmd.Output()
	var results []conformance.Result
	if jerr := json.Unmarshal(out, &results); jerr != nil {
		t.Fatalf("posctl conformance: %v, output not JSON: %v\n%s", err, jerr, out)
	}
	if err != nil || len(results) != len(conformance.Scenarios()) {
		for _, r := range results {
			if r.Verdict != conformance.Pass {
				t.Logf("%s: %s: %s\n%v", r.Name, r.Verdict, r.Detail, r.Evidence)
			}
		}
		t.Fatalf("posctl conformance against posgw: %v, %d results", err, len(results))
	}
	for _, r := range results {
		if r.Verdict != conformance.Pass {
			t.Errorf("%s: %s: %s", r.Name, r.Verdict, r.Detail)
		}
	}
	// The table form names every scenario and the totals.
	tc := exec.Command(bins["posctl"], "conformance", "-broker", m.URL(), "-device-id", "conf-1", "-device-id2", "conf-1-b", "-run", "^sale$")
	tc.Env = cmd.Env
	table, _ := tc.CombinedOutput()
	if !strings.Contains(string(table), "sale") || !strings.Contains(string(table), "1 passed, 0 failed, 0 skipped") {
		t.Errorf("table output:\n%s", table)
	}
}
