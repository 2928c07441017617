package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/fleet"
	wsync "github.com/walletless/walletless/sync"
)

// fleetPosd is a posd process with a fleet section, driven by the test.
type fleetPosd struct {
	t        *testing.T
	bin      string
	args     []string
	api      string
	dataDir  string
	scan     *io.PipeWriter
	p        *proc
	reports  *client // posfleet, subscribed to the device's report topic
	device   string
	pushUser *client // posfleet, publishes the slots
}

func (f *fleetPosd) start() {
	f.t.Helper()
	r, w := io.Pipe()
	f.scan = w
	f.p = start(f.t, r, f.bin, f.args...)
	f.t.Cleanup(func() { w.Close() }) // before start's cleanup: its Wait waits for stdin's copier
	waitHTTP(f.t, f.api+"/v1/status")
}

func (f *fleetPosd) stop() {
	f.t.Helper()
	f.scan.Close()
	f.p.stop(f.t)
}

// push publishes doc signed by key on topic, retained, as the fleet manager.
func (f *fleetPosd) push(topic string, doc []byte, key minisign.PrivateKey) {
	f.t.Helper()
	p, err := fleet.Seal(doc, fleet.Sign(key, doc))
	if err != nil {
		f.t.Fatal(err)
	}
	f.pushUser.pub(f.t, topic, true, string(p))
}

// report waits for the device's report of version with code (other reports pass).
func (f *fleetPosd) report(version int64, code int) fleet.Report {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		f.reports.mu.Lock()
		for i, m := range f.reports.in {
			r, err := fleet.ParseReport(m.Payload())
			if err != nil {
				f.t.Errorf("report %s: %v", m.Payload(), err)
				continue
			}
			if r.Version == version && r.Code == code {
				f.reports.in = f.reports.in[i+1:]
				f.reports.mu.Unlock()
				return r
			}
		}
		f.reports.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	f.reports.mu.Lock()
	var seen []string
	for _, m := range f.reports.in {
		seen = append(seen, string(m.Payload()))
	}
	f.reports.mu.Unlock()
	if os.Getenv("FLEET_DEBUG") != "" {
		f.p.cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(time.Second)
		os.WriteFile("/tmp/posd-fleet.out", []byte(f.p.cmd.Stdout.(*lockedWriter).String()), 0o600)
	}
	f.t.Fatalf("no report %d for version %d; seen:\n%s", code, version, strings.Join(seen, "\n"))
	return fleet.Report{}
}

// inForce returns the version and merchant name posd runs with (GET /v1/config).
func (f *fleetPosd) inForce() (int64, string) {
	f.t.Helper()
	code, m := getJSON(f.t, "GET", f.api+"/v1/config", "")
	if code != 200 {
		f.t.Fatalf("GET /v1/config: %d %v", code, m)
	}
	cfg, _ := m["config"].(map[string]any)
	merchant, _ := cfg["merchant"].(map[string]any)
	name, _ := merchant["name"].(string)
	v, _ := m["version"].(float64)
	return int64(v), name
}

func doc(version int64, target, config string, extra ...string) []byte {
	return []byte(fmt.Sprintf(`{"v":1,"version":%d,"target":%s,%s"config":%s}`, version, target, strings.Join(extra, ""), config))
}

// TestFleetConfigAgainstMosquitto pushes signed configuration to a posd process
// through Debian's mosquitto with the deploy ACL: every kind of bad document is
// reported 400 and changes nothing; a document signed with the minisign CLI applies;
// a push during an authorizing sale waits for it; a broker setting that cannot
// connect is rolled back and reported 500; a push made while posd is down applies
// when it comes back; posctl config history and rollback work.
func TestFleetConfigAgainstMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cli := need(t, "minisign", "minisign")
	const dev = "shop-1"
	m := newMosquitto(t, mosqOpts{persistence: true, users: []string{dev, "shop-2"}})
	dir := t.TempDir()
	bins := build(t, dir, "posd", "posctl")
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := minisign.GenerateKey(rand.Reader)

	// The minisign CLI's own key, trusted too (rotation: a list of keys).
	cliPub, cliSec := filepath.Join(dir, "cli.pub"), filepath.Join(dir, "cli.key")
	if out, err := exec.Command(cli, "-G", "-W", "-p", cliPub, "-s", cliSec).CombinedOutput(); err != nil {
		t.Fatalf("minisign -G: %v\n%s", err, out)
	}
	cliPubText, _ := os.ReadFile(cliPub)
	cliKey := strings.Split(strings.TrimSpace(string(cliPubText)), "\n")[1]

	dataDir := filepath.Join(dir, "posd-data")
	pwFile := filepath.Join(dir, "mqtt.pw")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := map[string]any{
		"version": 1, "device_id": dev, "data_dir": dataDir, "api": map[string]any{"addr": apiAddr},
		"mqtt": map[string]any{"broker": m.URL(), "username": dev, "password_file": pwFile, "allow_plaintext": true,
			"resend_after": "2s", "heartbeat": "1s"},
		"scanner":  map[string]any{"source": "stdin"},
		"printer":  map[string]any{"target": "none"},
		"merchant": map[string]any{"name": "File Mart"},
		"fleet":    map[string]any{"trusted_keys": []string{pub.String(), cliKey}, "groups": []string{"korea"}, "verify_timeout": "3s"},
	}
	cfgFile := filepath.Join(dir, "posd.json")
	b, _ := json.Marshal(cfg)
	os.WriteFile(cfgFile, b, 0o600)

	gw := startGateways(t, m.URL(), 1)
	f := &fleetPosd{t: t, bin: bins["posd"], api: "http://" + apiAddr, dataDir: dataDir, device: dev,
		args: []string{"-config", cfgFile, "-data", dataDir, "-api", apiAddr}}
	f.reports = mustConnect(t, m.URL(), "posfleet", "fleet-reports")
	f.reports.sub(t, fleet.ReportFilter)
	f.pushUser = mustConnect(t, m.URL(), "posfleet", "fleet-push")
	f.start()

	// 1. A group push applies.
	f.push(fleet.GroupTopic("korea"), doc(1, `{"group":"korea"}`, `{"merchant":{"name":"Korea Mart"},"printer":{"language":"ko"}}`), priv)
	f.report(1, fleet.CodeApplied)
	if v, name := f.inForce(); v != 1 || name != "Korea Mart" {
		t.Fatalf("after v1: %d %q", v, name)
	}

	// 2. Every bad document is reported 400 with its reason and changes nothing.
	now := time.Now().UTC()
	past, future := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	good := doc(11, `{"device":"shop-1"}`, `{"merchant":{"name":"Forged Mart"}}`)
	forgedSig := fleet.Sign(priv, doc(11, `{"device":"shop-1"}`, `{"merchant":{"name":"Other"}}`))
	forged, _ := fleet.Seal(good, forgedSig)
	for _, c := range []struct {
		name, topic string
		payload     []byte // sent as is when set
		doc         []byte
		key         minisign.PrivateKey
		version     int64
		reason      string
	}{
		{name: "forged signature", topic: fleet.DeviceTopic(dev), payload: forged, version: 11, reason: "bad signature"},
		{name: "untrusted key", topic: fleet.DeviceTopic(dev), doc: doc(12, `{"device":"shop-1"}`, `{"merchant":{"name":"X"}}`), key: otherPriv, version: 12, reason: "does not trust"},
		{name: "another target", topic: fleet.DeviceTopic(dev), doc: doc(13, `{"device":"shop-2"}`, `{"merchant":{"name":"X"}}`), key: priv, version: 13, reason: "another target"},
		{name: "expired", topic: fleet.AllTopic(), doc: doc(14, `{"all":true}`, `{"merchant":{"name":"X"}}`, `"not_after":"`+past+`",`), key: priv, version: 14, reason: "expired"},
		{name: "not yet valid", topic: fleet.AllTopic(), doc: doc(15, `{"all":true}`, `{"merchant":{"name":"X"}}`, `"not_before":"`+future+`",`), key: priv, version: 15, reason: "not yet valid"},
		{name: "replayed older version", topic: fleet.AllTopic(), doc: doc(1, `{"all":true}`, `{"merchant":{"name":"X"}}`), key: priv, version: 1, reason: "replay"},
		{name: "malformed envelope", topic: fleet.DeviceTopic(dev), payload: []byte(`{"v":1,"document":"not base64!"}`), version: 0, reason: "malformed"},
		{name: "malformed document", topic: fleet.DeviceTopic(dev), doc: []byte(`{"v":1,"version":16,"target":{"device":"shop-1"},"config":{}`), key: priv, version: 0, reason: "malformed"},
		{name: "unknown config key", topic: fleet.DeviceTopic(dev), doc: doc(17, `{"device":"shop-1"}`, `{"merchant":{"nmae":"X"}}`), key: priv, version: 17, reason: "unknown field"},
		{name: "bad merchant.emv_qr", topic: fleet.DeviceTopic(dev), doc: doc(18, `{"device":"shop-1"}`, `{"merchant":{"emv_qr":"00020101021126280012com.example0108ABCD12345204541153034105802KR5909Shop Name6005Seoul6304FFFF"}}`), key: priv, version: 18, reason: "merchant.emv_qr"},
	} {
		p := c.payload
		if p == nil {
			var err error
			if p, err = fleet.Seal(c.doc, fleet.Sign(c.key, c.doc)); err != nil {
				t.Fatal(err)
			}
		}
		f.pushUser.pub(t, c.topic, true, string(p))
		r := f.report(c.version, fleet.CodeRejected)
		if !strings.Contains(r.Reason, c.reason) {
			t.Errorf("%s: reason %q, want %q", c.name, r.Reason, c.reason)
		}
		if v, name := f.inForce(); v != 1 || name != "Korea Mart" {
			t.Errorf("%s: config changed to v%d %q", c.name, v, name)
		}
	}

	// 3. A document signed with the minisign CLI (prehashed, its default) applies.
	docFile := filepath.Join(dir, "v2.json")
	os.WriteFile(docFile, doc(2, `{"device":"shop-1"}`, `{"merchant":{"name":"CLI Mart"}}`), 0o600)
	if out, err := exec.Command(cli, "-S", "-s", cliSec, "-m", docFile).CombinedOutput(); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	docBytes, _ := os.ReadFile(docFile)
	sigBytes, _ := os.ReadFile(docFile + ".minisig")
	p, _ := fleet.Seal(docBytes, sigBytes)
	f.pushUser.pub(t, fleet.DeviceTopic(dev), true, string(p))
	f.report(2, fleet.CodeApplied)
	if v, name := f.inForce(); v != 2 || name != "CLI Mart" {
		t.Fatalf("after the CLI document: %d %q", v, name)
	}

	// 4. A push while a sale is authorizing (posgw is down) waits for the sale.
	gw.stop()
	code, sale := getJSON(t, "POST", f.api+"/v1/sales", `{"amount_minor": 5000, "currency": "KRW"}`)
	if code != 201 {
		t.Fatalf("create sale: %d %v", code, sale)
	}
	id := sale["id"].(string)
	fmt.Fprintln(f.scan, "281234567890123456")
	waitFor(t, "the sale authorizing", 20*time.Second, func() bool {
		_, s := getJSON(t, "GET", f.api+"/v1/sales/"+id, "")
		return s["status"] == "authorizing"
	})
	f.push(fleet.DeviceTopic(dev), doc(3, `{"device":"shop-1"}`, `{"merchant":{"name":"After Sale Mart"}}`), priv)
	f.report(3, fleet.CodeApplying)
	// Watched for a while (not a timing assertion: the sale cannot finish while posgw
	// is down, so the configuration must stay as it was however long we look).
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_, s := getJSON(t, "GET", f.api+"/v1/sales/"+id, "")
		if s["status"] != "authorizing" {
			t.Fatalf("sale %v while posgw is down", s["status"])
		}
		if v, name := f.inForce(); v != 2 || name != "CLI Mart" {
			t.Fatalf("applied during an authorizing sale: v%d %q", v, name)
		}
	}
	var s map[string]any
	startGateways(t, m.URL(), 1)
	f.report(3, fleet.CodeApplied)
	_, s = getJSON(t, "GET", f.api+"/v1/sales/"+id, "")
	if s["status"] != "approved" {
		t.Fatalf("sale %v after the push", s["status"])
	}
	if v, name := f.inForce(); v != 3 || name != "After Sale Mart" {
		t.Fatalf("after v3: %d %q", v, name)
	}

	// 5. A broker setting that cannot connect is rolled back within verify_timeout and
	// reported 500 with why; the link comes back with the previous settings.
	dead := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	f.push(fleet.DeviceTopic(dev), doc(4, `{"device":"shop-1"}`, `{"mqtt":{"broker":"`+dead+`"},"merchant":{"name":"Dead Broker Mart"}}`), priv)
	r := f.report(4, fleet.CodeFailed)
	if !strings.Contains(r.Reason, "verify_timeout") {
		t.Errorf("500 reason %q", r.Reason)
	}
	if v, name := f.inForce(); v != 3 || name != "After Sale Mart" {
		t.Fatalf("after the failed broker push: %d %q", v, name)
	}
	waitFor(t, "the link back online", 30*time.Second, func() bool {
		_, st := getJSON(t, "GET", f.api+"/v1/status", "")
		return st["online"] == true
	})

	// 6. A push while posd is down applies when it comes back; a replay of an older
	// version after the restart is still refused.
	f.stop()
	f.push(fleet.AllTopic(), doc(5, `{"all":true}`, `{"payment":{"offline":{"default":{"action":"defer","max_amount_minor":{"KRW":30000}}}}}`), priv)
	f.start()
	f.report(5, fleet.CodeApplied)
	if v, name := f.inForce(); v != 5 || name != "After Sale Mart" {
		t.Fatalf("after the offline push: %d %q", v, name)
	}
	_, st := getJSON(t, "GET", f.api+"/v1/status", "")
	if st["config_version"] != float64(5) {
		t.Errorf("status config_version %v", st["config_version"])
	}
	f.push(fleet.GroupTopic("korea"), doc(4, `{"group":"korea"}`, `{"merchant":{"name":"Replay Mart"}}`), priv)
	if r := f.report(4, fleet.CodeRejected); !strings.Contains(r.Reason, "replay") {
		t.Errorf("replay after restart: %q", r.Reason)
	}

	// 7. posctl config history and rollback.
	out, err := exec.Command(bins["posctl"], "config", "history", "-json", "-api", f.api, "-data", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("posctl config history: %v\n%s", err, out)
	}
	var hist struct {
		Version int64 `json:"version"`
		History []struct {
			Version int64 `json:"version"`
			InForce bool  `json:"in_force"`
		} `json:"history"`
	}
	if err := json.Unmarshal(out, &hist); err != nil || hist.Version != 5 || len(hist.History) != 4 || hist.History[0].Version != 5 || !hist.History[0].InForce {
		t.Fatalf("history %+v %v\n%s", hist, err, out)
	}
	if bytes.Contains(out, []byte(password)) {
		t.Error("the history shows the broker password")
	}
	out, err = exec.Command(bins["posctl"], "config", "rollback", "-api", f.api, "-data", dataDir, "2").CombinedOutput()
	if err != nil {
		t.Fatalf("posctl config rollback: %v\n%s", err, out)
	}
	f.report(2, fleet.CodeApplied)
	if v, name := f.inForce(); v != 2 || name != "CLI Mart" {
		t.Fatalf("after the rollback: %d %q", v, name)
	}
	out, _ = exec.Command(bins["posctl"], "config", "history", "-api", f.api, "-data", dataDir).CombinedOutput()
	if !bytes.Contains(out, []byte("in force: version 2")) {
		t.Errorf("posctl config history after the rollback:\n%s", out)
	}
	if out, err := exec.Command(bins["posctl"], "config", "rollback", "-api", f.api, "-data", dataDir, "9").CombinedOutput(); err == nil {
		t.Errorf("rollback to an unknown version succeeded:\n%s", out)
	}
	// A newer version is accepted after the rollback.
	f.push(fleet.DeviceTopic(dev), doc(6, `{"device":"shop-1"}`, `{"merchant":{"name":"Six Mart"}}`), priv)
	f.report(6, fleet.CodeApplied)
	f.stop()
}

// TestFleetACL: with the deploy ACL only posfleet publishes desired configuration; a
// device reads all, groups and its own slot but not another device's, and publishes
// only its own report.
func TestFleetACL(t *testing.T) {
	m := newMosquitto(t, mosqOpts{persistence: true, users: []string{"dev-a", "dev-b"}})
	mgr := mustConnect(t, m.URL(), "posfleet", "fleet-acl")
	mgr.sub(t, fleet.ReportFilter)
	devA := mustConnect(t, m.URL(), "dev-a", "posd-dev-a")
	devA.sub(t, fleet.Filters("dev-a", []string{"korea"})...)
	devA.sub(t, fleet.DeviceTopic("dev-b"), fleet.ConfigFilter)
	devB := mustConnect(t, m.URL(), "dev-b", "posd-dev-b")
	devB.sub(t, fleet.Filters("dev-b", nil)...)

	// A device cannot publish desired configuration, to itself or to others.
	devA.pub(t, fleet.DeviceTopic("dev-a"), true, "self-push")
	devA.pub(t, fleet.DeviceTopic("dev-b"), true, "spoofed-push")
	devA.pub(t, fleet.AllTopic(), true, "spoofed-all")
	mgr.pub(t, fleet.DeviceTopic("dev-b"), true, "marker-b")
	if got := devB.waitPayload(t, "marker-b"); len(got) > 0 {
		t.Errorf("device B received %v", topicsOf(got))
	}
	// A device does not read another device's slot.
	mgr.pub(t, fleet.GroupTopic("korea"), true, "group-doc")
	mgr.pub(t, fleet.DeviceTopic("dev-a"), true, "marker-a")
	got := devA.waitPayload(t, "marker-a")
	for _, m := range got {
		if m.Topic() == fleet.DeviceTopic("dev-b") {
			t.Errorf("device A read device B's slot: %s", m.Payload())
		}
	}
	if len(got) != 1 || string(got[0].Payload()) != "group-doc" {
		t.Errorf("device A received %v before its marker, want only the group document", topicsOf(got))
	}
	// A device reports only on its own topic.
	devA.pub(t, fleet.ReportTopic("dev-b"), true, "spoofed-report")
	devA.pub(t, fleet.ReportTopic("dev-a"), true, "report-a")
	if got := mgr.waitPayload(t, "report-a"); len(got) > 0 {
		t.Errorf("posfleet received %v", topicsOf(got))
	}
	_ = wsync.Version
}
