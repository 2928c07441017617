package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetRealPosd drives two real posd processes (group seoul) with posfleet over
// mosquitto: status shows them online with their heartbeats, a canary rollout of a
// merchant name reaches both, and a canary rollout of a broken merchant.emv_qr halts
// at the first canary with posd's own validation message while the other posd never
// gets the document.
func TestFleetRealPosd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	bins := build(t, dir, "posd", "posfleet")
	bin := bins["posfleet"]
	keyOut, _, _ := runFleet(t, bin, "keygen", "-o", filepath.Join(dir, "keys"), "-json")
	var kg struct {
		S string `json:"secret_key"`
		T string `json:"trusted_key"`
	}
	if err := json.Unmarshal([]byte(keyOut), &kg); err != nil {
		t.Fatal(err)
	}
	key := kg.S
	ids := []string{"pos-seoul-1", "pos-seoul-2"}
	m := newMosquitto(t, mosqOpts{users: ids})
	pw := passwordFile(t)
	for _, id := range ids {
		data := filepath.Join(dir, id)
		cfg := map[string]any{
			"version": 1, "device_id": id, "data_dir": data,
			"api":     map[string]any{"addr": fmt.Sprintf("127.0.0.1:%d", freePort(t))},
			"mqtt":    map[string]any{"broker": m.URL(), "username": id, "password_file": pw, "allow_plaintext": true, "heartbeat": "500ms"},
			"fleet":   map[string]any{"trusted_keys": []string{kg.T}, "groups": []string{"seoul"}},
			"scanner": map[string]any{"source": "stdin"},
			"printer": map[string]any{"target": "none"},
		}
		b, _ := json.Marshal(cfg)
		path := filepath.Join(dir, id+".json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, w, _ := os.Pipe()
		t.Cleanup(func() { w.Close() })
		p := start(t, r, bins["posd"], "-config", path)
		t.Cleanup(func() { p.stop(t) })
	}
	conn := []string{"-broker", m.URL(), "-password-file", pw}
	var st statusJSON
	waitFor(t, "both posd online", 60*time.Second, func() bool {
		out, _, code := runFleet(t, bin, append(append([]string{"status"}, conn...), "-listen", "5s", "-json")...)
		st = statusJSON{}
		return code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.Online == 2
	})
	for _, d := range st.Devices {
		if len(d.Groups) != 1 || d.Groups[0] != "seoul" || d.QueueDepth == nil {
			t.Errorf("%s: groups %v, queue %v", d.Device, d.Groups, d.QueueDepth)
		}
	}

	cfgDir := t.TempDir()
	good := filepath.Join(cfgDir, "name.json")
	os.WriteFile(good, []byte(`{"merchant":{"name":"Seoul Station"}}`), 0o644)
	out, _, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...),
		"-key", key, "-group", "seoul", "-canary", "1", "-wait", "2s", "-timeout", "60s", "-json", good)...)
	var pr pushJSON
	decodeJSON(t, out, &pr)
	if code != 0 || !pr.Pushed || pr.Version != 2 || len(pr.Devices) != 2 {
		t.Fatalf("canary push to real posd: exit %d, %+v", code, pr)
	}
	for _, d := range pr.Devices {
		if d.State != "applied" {
			t.Errorf("%s: %s (%s)", d.Device, d.State, d.Reason)
		}
	}

	bad := filepath.Join(cfgDir, "qr.json")
	os.WriteFile(bad, []byte(`{"merchant":{"emv_qr":"000201010211520454115303410580 2KR6304FFFF"}}`), 0o644)
	_, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...),
		"-key", key, "-group", "seoul", "-canary", "1", "-wait", "2s", "-timeout", "60s", bad)...)
	if code != 3 || !strings.Contains(errOut, "pos-seoul-1 rejected version 3") || !strings.Contains(errOut, "emv_qr") {
		t.Fatalf("broken emv_qr: exit %d\n%s", code, errOut)
	}
	out, _, _ = runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "3", "-json")...)
	var cs configStatusJSON
	decodeJSON(t, out, &cs)
	if len(cs.Devices) != 1 || cs.Devices[0].Device != "pos-seoul-1" || cs.Devices[0].State != "rejected" {
		t.Fatalf("version 3 reached more than the canary: %+v", cs.Devices)
	}
	out, _, _ = runFleet(t, bin, append(append([]string{"status"}, conn...), "-listen", "5s", "-json")...)
	st = statusJSON{}
	decodeJSON(t, out, &st)
	for _, d := range st.Devices {
		if d.ConfigVersion != "2" {
			t.Errorf("%s runs config version %q after the halted rollout, want 2", d.Device, d.ConfigVersion)
		}
	}
}
