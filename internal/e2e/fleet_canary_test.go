package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statusJSON is posfleet status -json.
type statusJSON struct {
	Devices []struct {
		Device        string   `json:"device"`
		State         string   `json:"state"`
		Online        bool     `json:"online"`
		Stale         bool     `json:"stale"`
		Groups        []string `json:"groups"`
		Firmware      string   `json:"firmware"`
		ConfigVersion string   `json:"config_version"`
		QueueDepth    *int     `json:"queue_depth"`
		Scanner       string   `json:"scanner"`
		Printer       string   `json:"printer"`
	} `json:"devices"`
	Online, Stale, Offline int
}

// pushJSON is posfleet config push -json.
type pushJSON struct {
	Version       uint64 `json:"version"`
	CanaryVersion uint64 `json:"canary_version"`
	Pushed        bool   `json:"pushed"`
	Halted        bool   `json:"halted"`
	Reason        string `json:"reason"`
	Canaries      []struct {
		Device, State, Reason string
	} `json:"canaries"`
	Devices []struct {
		Device, State, Reason string
	} `json:"devices"`
}

// configStatusJSON is posfleet config status -json.
type configStatusJSON struct {
	Version uint64 `json:"version"`
	Devices []struct {
		Device string `json:"device"`
		State  string `json:"state"`
		Code   int    `json:"code"`
		Reason string `json:"reason"`
		Online bool   `json:"online"`
	} `json:"devices"`
	Counts   map[string]int `json:"counts"`
	Finished bool           `json:"finished"`
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("posfleet -json output %q: %v", s, err)
	}
}

// TestFleetSimulatorCanary runs 100 simulated devices (50 in group seoul, 50 in
// tokyo; tokyo-050 rejects every document, tokyo-098 goes offline, tokyo-099 is online
// but sends no heartbeat) against mosquitto and drives them with the posfleet
// binary: status lists them with online/stale/offline, a canary rollout to seoul
// reaches every seoul device and no tokyo device, and a canary rollout to tokyo halts
// at tokyo-050's rejection with exit code 3, naming the device and its reason, before
// the group document is pushed.
func TestFleetSimulatorCanary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := posfleetBin(t)
	key, _, pub := fleetKeys(t, bin)
	specs := fleetSpecs(100)
	for i := range specs {
		switch specs[i].id {
		case "tokyo-050":
			specs[i].reject = "merchant.emv_qr: CRC mismatch"
		case "tokyo-099":
			specs[i].silent = true
		}
	}
	m := fleetBroker(t, specIDs(specs))
	fleet := startSim(t, m, pub, specs)
	fleet.devices["tokyo-098"].close()
	pw := passwordFile(t)
	conn := []string{"-broker", m.URL(), "-username", "posfleet", "-password-file", pw}

	// posfleet status: 98 online, tokyo-099 stale, tokyo-098 offline.
	out, _, code := runFleet(t, bin, append(append([]string{"status"}, conn...), "-listen", "3s", "-json")...)
	if code != 0 {
		t.Fatalf("status exit %d", code)
	}
	var st statusJSON
	decodeJSON(t, out, &st)
	if len(st.Devices) != 100 || st.Online != 98 || st.Stale != 1 || st.Offline != 1 {
		t.Fatalf("status: %d devices, %d online, %d stale, %d offline; want 100, 98, 1, 1", len(st.Devices), st.Online, st.Stale, st.Offline)
	}
	for _, d := range st.Devices {
		want := "online"
		switch d.Device {
		case "tokyo-098":
			want = "offline"
		case "tokyo-099":
			want = "stale"
		}
		if d.State != want {
			t.Errorf("%s: state %q, want %q", d.Device, d.State, want)
		}
		if want == "online" && (d.Firmware != "1.4.2" || d.ConfigVersion != "0" || d.QueueDepth == nil || d.Scanner != "ok" || d.Printer != "usb") {
			t.Errorf("%s: heartbeat fields not shown: %+v", d.Device, d)
		}
	}
	out, _, code = runFleet(t, bin, append(append([]string{"status"}, conn...), "-group", "seoul", "-listen", "3s")...)
	if code != 0 || strings.Count(out, "seoul-") != 50 || strings.Contains(out, "tokyo-") || !strings.Contains(out, "50 online, 0 stale") {
		t.Fatalf("status -group seoul: exit %d\n%s", code, out)
	}

	// A canary rollout to seoul: 3 canaries, then the group.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seoul.json")
	if err := os.WriteFile(cfg, []byte(`{"merchant": {"name": "Seoul v2"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = runFleet(t, bin, append(append([]string{"config", "push"}, conn...),
		"-key", key, "-group", "seoul", "-canary", "3", "-wait", "2s", "-timeout", "60s", "-progress", "1s", "-json", cfg)...)
	if code != 0 {
		t.Fatalf("canary push to seoul: exit %d", code)
	}
	var pr pushJSON
	decodeJSON(t, out, &pr)
	if !pr.Pushed || pr.Halted || pr.CanaryVersion != 1 || pr.Version != 2 || len(pr.Canaries) != 3 || pr.Canaries[0].Device != "seoul-000" {
		t.Fatalf("push result: %+v", pr)
	}
	for _, id := range groupOf(specs, "seoul") {
		d := fleet.devices[id]
		waitFor(t, id+" applies version 2", 30*time.Second, func() bool { v, _, _ := d.state(2); return v == 2 })
		if _, c, _ := d.state(2); c != `{"merchant":{"name":"Seoul v2"}}` {
			t.Errorf("%s: effective config %s", id, c)
		}
	}
	for _, id := range groupOf(specs, "tokyo") {
		if v, _, got := fleet.devices[id].state(1); v != 0 || got {
			t.Errorf("%s (tokyo) got a seoul document: version %d", id, v)
		}
	}
	// The canaries' device documents were cleared after the group push.
	for _, id := range []string{"seoul-000", "seoul-001", "seoul-002"} {
		d := fleet.devices[id]
		waitFor(t, id+" device slot cleared", 30*time.Second, func() bool { return !d.holdsDeviceDoc() })
	}
	out, _, code = runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "2", "-group", "seoul", "-json")...)
	var cs configStatusJSON
	decodeJSON(t, out, &cs)
	if code != 0 || cs.Counts["applied"] != 50 || len(cs.Devices) != 50 || !cs.Finished {
		t.Fatalf("config status -version 2 -group seoul: exit %d, %+v", code, cs.Counts)
	}

	// A canary rollout to tokyo halts at tokyo-050, the first canary by id.
	tokyo := filepath.Join(dir, "tokyo.json")
	if err := os.WriteFile(tokyo, []byte(`{"merchant": {"name": "Tokyo v2"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...),
		"-key", key, "-group", "tokyo", "-canary", "3", "-wait", "2s", "-timeout", "60s", tokyo)...)
	if code != 3 {
		t.Fatalf("halted canary push: exit %d, want 3", code)
	}
	if !strings.Contains(errOut, "tokyo-050") || !strings.Contains(errOut, "merchant.emv_qr: CRC mismatch") || !strings.Contains(errOut, "halted") {
		t.Errorf("the halt message does not name the device and its reason:\n%s", errOut)
	}
	if !strings.Contains(out, "NOT pushed") {
		t.Errorf("stdout does not say the group document was not pushed:\n%s", out)
	}
	for _, id := range groupOf(specs, "tokyo") {
		if id == "tokyo-050" || id == "tokyo-051" || id == "tokyo-052" {
			continue
		}
		if _, _, got := fleet.devices[id].state(3); got {
			t.Errorf("%s got version 3 although the rollout halted at its canaries", id)
		}
	}
	if _, _, got := fleet.devices["tokyo-050"].state(3); !got {
		t.Error("tokyo-050 never got its canary document")
	}
	// config status shows the rejection with its reason.
	out, _, code = runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "3", "-json")...)
	decodeJSON(t, out, &cs)
	// Version 3 went only to the canaries: their reports are the version's scope.
	if code != 3 || cs.Counts["rejected"] != 1 || cs.Counts["applied"] != 2 || len(cs.Devices) != 3 {
		t.Fatalf("config status -version 3: exit %d, %+v", code, cs.Counts)
	}
	for _, d := range cs.Devices {
		if d.Device == "tokyo-050" && (d.State != "rejected" || d.Code != 400 || !strings.Contains(d.Reason, "merchant.emv_qr: CRC mismatch")) {
			t.Errorf("tokyo-050 in config status: %+v", d)
		}
	}
}
