package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetMinisignInterop: a key from posfleet keygen signs with posfleet and the
// minisign CLI verifies it; the minisign CLI signs a document with the same key and
// posfleet pushes that document with its .minisig, which a device applies. The
// broker ACL keeps a device from publishing desired config, even a signed document.
func TestFleetMinisignInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	mini := need(t, "minisign", "minisign")
	bin := posfleetBin(t)
	key, pubFile, pub := fleetKeys(t, bin)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode: %v %v", fi.Mode(), err)
	}
	// keygen refuses to overwrite.
	if _, errOut, code := runFleet(t, bin, "keygen", "-o", filepath.Dir(key)); code != 1 || !strings.Contains(errOut, "refusing to overwrite") {
		t.Fatalf("second keygen into the same directory: exit %d, %s", code, errOut)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.json")
	os.WriteFile(cfg, []byte(`{"merchant":{"name":"Shibuya"}}`), 0o644)

	// posfleet signs, minisign verifies.
	doc := filepath.Join(dir, "doc.json")
	if _, _, code := runFleet(t, bin, "config", "sign", "-key", key, "-device", "tokyo-001", "-version", "7", "-not-after", "72h", "-o", doc, cfg); code != 0 {
		t.Fatalf("config sign: exit %d", code)
	}
	if out, err := exec.Command(mini, "-V", "-p", pubFile, "-m", doc).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V of posfleet's signature: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "walletless config version 7 for device tokyo-001") {
		t.Errorf("trusted comment missing: %s", out)
	}
	tampered := filepath.Join(dir, "tampered.json")
	b, _ := os.ReadFile(doc)
	os.WriteFile(tampered, []byte(strings.Replace(string(b), "Shibuya", "Shinjuku", 1)), 0o644)
	sig, _ := os.ReadFile(doc + ".minisig")
	os.WriteFile(tampered+".minisig", sig, 0o644)
	if out, err := exec.Command(mini, "-V", "-p", pubFile, "-m", tampered).CombinedOutput(); err == nil {
		t.Fatalf("minisign verified a tampered document: %s", out)
	}

	// minisign signs a hand-written document (spacing kept byte for byte), posfleet
	// pushes it with its .minisig, the device applies it.
	specs := []simSpec{{id: "tokyo-001", groups: []string{"tokyo"}}, {id: "tokyo-002", groups: []string{"tokyo"}}}
	m := fleetBroker(t, specIDs(specs))
	fleet := startSim(t, m, pub, specs)
	conn := []string{"-broker", m.URL(), "-password-file", passwordFile(t)}
	hand := filepath.Join(dir, "tokyo.json")
	os.WriteFile(hand, []byte("{\n  \"v\": 1,\n  \"version\": 3,\n  \"target\": {\"group\": \"tokyo\"},\n  \"config\": {\"merchant\": {\"name\": \"Tokyo\"}}\n}\n"), 0o644)
	if out, err := exec.Command(mini, "-S", "-s", key, "-m", hand).CombinedOutput(); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	// Its version 3 is fine for fresh devices; the bare config beside a .minisig and
	// a tampered document are refused before anything is published.
	os.WriteFile(cfg+".minisig", sig, 0o644)
	if _, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-group", "tokyo", cfg)...); code != 1 || !strings.Contains(errOut, "whole document") {
		t.Errorf("bare config with a .minisig: exit %d, %s", code, errOut)
	}
	if _, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-pub", pubFile, tampered)...); code != 1 || !strings.Contains(errOut, "does not verify") {
		t.Errorf("tampered document with -pub: exit %d, %s", code, errOut)
	}
	out, _, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-pub", pubFile, "-timeout", "30s", hand)...)
	if code != 0 || !strings.Contains(out, "pushed version 3 to group tokyo") {
		t.Fatalf("push of the minisign-signed document: exit %d", code)
	}
	for _, id := range []string{"tokyo-001", "tokyo-002"} {
		if v, c, _ := fleet.devices[id].state(3); v != 3 || c != `{"merchant":{"name":"Tokyo"}}` {
			t.Errorf("%s: version %d, config %s", id, v, c)
		}
	}
	// The ACL: a device cannot publish desired config, even a validly signed
	// document. tokyo-002 publishes one (version 9) to its group; the broker drops it.
	rogue := filepath.Join(dir, "rogue.json")
	if _, _, code := runFleet(t, bin, "config", "sign", "-key", key, "-group", "tokyo", "-version", "9", "-o", rogue, cfg); code != 0 {
		t.Fatal("config sign for the rogue document")
	}
	rb, _ := os.ReadFile(rogue)
	rs, _ := os.ReadFile(rogue + ".minisig")
	payload, _ := json.Marshal(map[string]any{"v": 1, "document": base64.StdEncoding.EncodeToString(rb), "signature": string(rs)})
	if tok := fleet.devices["tokyo-002"].client.Publish("walletless/v1/fleet/config/groups/tokyo", 1, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("rogue publish: %v", tok.Error())
	}
	// Then the manager pushes version 10; once it is in force, 9 never came.
	if _, _, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-key", key, "-group", "tokyo", "-version", "10", "-timeout", "30s", cfg)...); code != 0 {
		t.Fatalf("push of version 10: exit %d", code)
	}
	for _, id := range []string{"tokyo-001", "tokyo-002"} {
		if v, _, got9 := fleet.devices[id].state(9); v != 10 || got9 {
			t.Errorf("%s: version %d, got the device-published version 9: %v", id, v, got9)
		}
	}
	// A canary rollout to -all: tokyo-001 first (version 11), then everyone (12).
	out, _, code = runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-key", key, "-all", "-canary", "1", "-wait", "1s", "-timeout", "30s", "-json", cfg)...)
	var pr pushJSON
	decodeJSON(t, out, &pr)
	if code != 0 || pr.CanaryVersion != 11 || pr.Version != 12 || len(pr.Canaries) != 1 || pr.Canaries[0].Device != "tokyo-001" {
		t.Fatalf("-all -canary 1: exit %d, %+v", code, pr)
	}
	for _, id := range []string{"tokyo-001", "tokyo-002"} {
		if v, _, _ := fleet.devices[id].state(12); v != 12 {
			t.Errorf("%s: version %d after the rollout to all, want 12", id, v)
		}
	}
	// A secret key its group can read is refused.
	os.Chmod(key, 0o640)
	if _, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-key", key, "-all", cfg)...); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("push with a 0640 key: exit %d, %s", code, errOut)
	}
}

// TestFleetConfigStatus: one version, four fates. fs-ok applies it, fs-bad rejects it
// (its validation fails), fs-fail applies and rolls back (500), fs-off is offline
// during the push. config status shows each with its reason and exits 3; after fs-off
// comes back it applies the retained document and reports it. A push with a version
// not above the devices' is refused before anything is published.
func TestFleetConfigStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := posfleetBin(t)
	key, _, pub := fleetKeys(t, bin)
	specs := []simSpec{
		{id: "fs-ok", groups: []string{"osaka"}},
		{id: "fs-bad", groups: []string{"osaka"}, reject: "printer.profile: unknown model TM-X"},
		{id: "fs-fail", groups: []string{"osaka"}, fail: "broker settings: no healthy link within fleet.verify_timeout (10s)"},
		{id: "fs-off", groups: []string{"osaka"}},
	}
	m := fleetBroker(t, specIDs(specs))
	fleet := startSim(t, m, pub, specs)
	fleet.devices["fs-off"].close()
	conn := []string{"-broker", m.URL(), "-password-file", passwordFile(t)}
	cfg := filepath.Join(t.TempDir(), "osaka.json")
	os.WriteFile(cfg, []byte(`{"payment":{"offline":{"by_scheme":{"jpqr":{"action":"defer","max_amount_minor":{"JPY":5000},"max_total_minor":{"JPY":50000},"max_count":20,"max_age":"72h"}}}}}`), 0o644)

	// No -version: one above the highest seen (none yet), so 1.
	out, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-key", key, "-group", "osaka", "-timeout", "30s", "-progress", "1s", cfg)...)
	if code != 3 || !strings.Contains(out, "pushed version 1 to group osaka") || !strings.Contains(errOut, "fs-bad rejected it") || !strings.Contains(errOut, "fs-fail failed it") {
		t.Fatalf("push to osaka: exit %d", code)
	}
	waitFor(t, "fs-fail's 500", 30*time.Second, func() bool {
		out, _, _ := runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "1", "-json")...)
		return strings.Contains(out, `"failed"`)
	})
	out, _, code = runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "1", "-json")...)
	var cs configStatusJSON
	decodeJSON(t, out, &cs)
	if code != 3 || cs.Counts["applied"] != 1 || cs.Counts["rejected"] != 1 || cs.Counts["failed"] != 1 || cs.Counts["pending"] != 1 {
		t.Fatalf("config status: exit %d, counts %v", code, cs.Counts)
	}
	want := map[string][2]string{
		"fs-ok":   {"applied", ""},
		"fs-bad":  {"rejected", "printer.profile: unknown model TM-X"},
		"fs-fail": {"failed", "no healthy link within fleet.verify_timeout"},
		"fs-off":  {"pending", "offline; applies it on reconnect"},
	}
	for _, d := range cs.Devices {
		w := want[d.Device]
		if d.State != w[0] || !strings.Contains(d.Reason, w[1]) {
			t.Errorf("%s: %s (%s), want %s (%s)", d.Device, d.State, d.Reason, w[0], w[1])
		}
	}
	// The table says the same for people.
	out, _, code = runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "1")...)
	for _, s := range []string{"fs-bad", "rejected", "400", "printer.profile: unknown model TM-X", "fs-fail", "failed", "500", "fs-off", "pending", "1 applied, 0 applying, 1 rejected, 1 failed, 1 pending"} {
		if !strings.Contains(out, s) {
			t.Errorf("config status table lacks %q", s)
		}
	}
	if code != 3 {
		t.Errorf("config status exit %d, want 3", code)
	}
	// A replayed version is refused by posfleet itself.
	if _, errOut, code := runFleet(t, bin, append(append([]string{"config", "push"}, conn...), "-key", key, "-group", "osaka", "-version", "1", cfg)...); code != 1 || !strings.Contains(errOut, "replay") {
		t.Errorf("push of version 1 again: exit %d, %s", code, errOut)
	}
	// fs-off comes back, applies the retained document and reports it.
	back := startSim(t, m, pub, []simSpec{{id: "fs-off", groups: []string{"osaka"}}})
	waitFor(t, "fs-off applies on reconnect", 30*time.Second, func() bool { v, _, _ := back.devices["fs-off"].state(1); return v == 1 })
	out, _, code = runFleet(t, bin, append(append([]string{"config", "status"}, conn...), "-version", "1", "-device", "fs-off", "-wait", "30s", "-json")...)
	decodeJSON(t, out, &cs)
	if code != 0 || len(cs.Devices) != 1 || cs.Devices[0].State != "applied" {
		t.Fatalf("config status -device fs-off after reconnect: exit %d, %+v", code, cs.Devices)
	}
}

// TestFleetMutualTLS: posfleet reaches the broker's mutual-TLS listener with -ca,
// -cert and -cert-key (its certificate's CN is its identity, posfleet), sees a device
// and pushes to it; without a client certificate the broker refuses it.
func TestFleetMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := posfleetBin(t)
	key, _, pub := fleetKeys(t, bin)
	specs := []simSpec{{id: "kr-tls-1", groups: []string{"kr"}}}
	m := newMosquitto(t, mosqOpts{users: specIDs(specs), tls: true})
	fleet := startSim(t, m, pub, specs)
	cert, certKey := m.pki.issue(t, "posfleet", false)
	os.Chmod(certKey, 0o600)
	tlsConn := []string{"-broker", m.TLSURL(), "-ca", m.pki.ca, "-cert", cert, "-cert-key", certKey}
	out, _, code := runFleet(t, bin, append(append([]string{"status"}, tlsConn...), "-listen", "5s")...)
	if code != 0 || !strings.Contains(out, "kr-tls-1") || !strings.Contains(out, "1 online") {
		t.Fatalf("status over mutual TLS: exit %d\n%s", code, out)
	}
	cfg := filepath.Join(t.TempDir(), "kr.json")
	os.WriteFile(cfg, []byte(`{"printer":{"language":"ko"}}`), 0o644)
	if _, _, code := runFleet(t, bin, append(append([]string{"config", "push"}, tlsConn...), "-key", key, "-group", "kr", "-timeout", "30s", cfg)...); code != 0 {
		t.Fatalf("push over mutual TLS: exit %d", code)
	}
	if v, c, _ := fleet.devices["kr-tls-1"].state(1); v != 1 || c != `{"printer":{"language":"ko"}}` {
		t.Fatalf("device after the push: version %d, config %s", v, c)
	}
	if _, errOut, code := runFleet(t, bin, "status", "-broker", m.TLSURL(), "-ca", m.pki.ca, "-listen", "1s"); code != 1 || !strings.Contains(errOut, "connect") {
		t.Fatalf("status without a client certificate: exit %d, %s", code, errOut)
	}
	os.Chmod(certKey, 0o644)
	if _, errOut, code := runFleet(t, bin, append([]string{"status"}, tlsConn...)...); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("status with a 0644 client key: exit %d, %s", code, errOut)
	}
}
