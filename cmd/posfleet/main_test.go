package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var o, e bytes.Buffer
	code := run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"nope"}, exitUsage},
		{[]string{"config"}, exitUsage},
		{[]string{"config", "nope"}, exitUsage},
		{[]string{"keygen"}, exitUsage},
		{[]string{"keygen", "-bogus"}, exitUsage},
		{[]string{"config", "push", "-broker", "tcp://127.0.0.1:1"}, exitUsage}, // no FILE
		{[]string{"config", "push", "-broker", "tcp://127.0.0.1:1", "-device", "a/b", "f.json"}, exitUsage}, // bad id
		{[]string{"config", "push", "-broker", "tcp://127.0.0.1:1", "missing.json"}, exitError},
		{[]string{"status"}, exitUsage}, // no -broker
		{[]string{"config", "sign", "-key", "k", "-o", "out", "f.json"}, exitUsage},
		{[]string{"status", "-broker", "tcp://127.0.0.1:1", "-ca", "ca.pem"}, exitError}, // TLS file with a plaintext URL
	} {
		_, stderr, code := runCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("posfleet %v: exit %d, want %d (%s)", tc.args, code, tc.code, stderr)
		}
	}
}

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, code := runCLI(t, "keygen", "-o", dir, "-json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var res keygenResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(res.SecretKey)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key: %v, %v", fi, err)
	}
	var pub minisign.PublicKey
	if err := pub.UnmarshalText([]byte(res.TrustedLine)); err != nil {
		t.Fatalf("trusted key line: %v", err)
	}
	filePub, err := minisign.PublicKeyFromFile(res.PublicKey)
	if err != nil || !filePub.Equal(pub) {
		t.Fatalf("public key file: %v", err)
	}
	key, err := readSecretKey(res.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	if !minisign.Verify(pub, msg, minisign.Sign(key, msg)) {
		t.Fatal("the pair does not sign and verify")
	}
	if strings.Contains(out, "secret") && bytes.Contains([]byte(out), mustRead(t, res.SecretKey)[60:]) {
		t.Fatal("keygen printed the secret key")
	}
	before := mustRead(t, res.SecretKey)
	if _, stderr, code := runCLI(t, "keygen", "-o", dir); code != exitError || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("second keygen: exit %d %s", code, stderr)
	}
	if !bytes.Equal(before, mustRead(t, res.SecretKey)) {
		t.Fatal("the secret key changed")
	}
	os.Chmod(res.SecretKey, 0o644)
	if _, err := readSecretKey(res.SecretKey); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0644 key was read: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDocument(t *testing.T) {
	good := `{"v":1,"version":3,"target":{"group":"seoul"},"not_after":"2030-01-01T00:00:00Z","config":{"receipt":{"header":"x"}}}`
	if d, err := parseDocument([]byte(good)); err != nil || d.Version != 3 || d.Target.Group != "seoul" {
		t.Fatalf("good document: %+v %v", d, err)
	}
	for name, doc := range map[string]string{
		"unknown field":  `{"v":1,"version":3,"target":{"all":true},"config":{},"extra":1}`,
		"trailing":       `{"v":1,"version":3,"target":{"all":true},"config":{}} {}`,
		"v2":             `{"v":2,"version":3,"target":{"all":true},"config":{}}`,
		"version 0":      `{"v":1,"version":0,"target":{"all":true},"config":{}}`,
		"negative":       `{"v":1,"version":-1,"target":{"all":true},"config":{}}`,
		"two targets":    `{"v":1,"version":3,"target":{"all":true,"group":"g"},"config":{}}`,
		"no target":      `{"v":1,"version":3,"target":{},"config":{}}`,
		"bad group":      `{"v":1,"version":3,"target":{"group":"a/#"},"config":{}}`,
		"window":         `{"v":1,"version":3,"target":{"all":true},"not_before":"2030-01-02T00:00:00Z","not_after":"2030-01-01T00:00:00Z","config":{}}`,
		"config array":   `{"v":1,"version":3,"target":{"all":true},"config":[1]}`,
		"config missing": `{"v":1,"version":3,"target":{"all":true}}`,
		"bad time":       `{"v":1,"version":3,"target":{"all":true},"not_after":"tomorrow","config":{}}`,
	} {
		if _, err := parseDocument([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	big := `{"v":1,"version":3,"target":{"all":true},"config":{"x":"` + strings.Repeat("a", maxDocument) + `"}}`
	if _, err := parseDocument([]byte(big)); err == nil {
		t.Error("oversize document accepted")
	}
}

func TestBuildSignEnvelope(t *testing.T) {
	pub, key, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	na := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	raw, err := buildDocument([]byte("{\n \"receipt\": {\"header\": \"서울\"}\n}"), target{Group: "seoul"}, 9, nil, &na)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"version":9,"target":{"group":"seoul"},"not_after":"2030-01-01T00:00:00Z","config":{"receipt":{"header":"서울"}}}` + "\n"
	if string(raw) != want {
		t.Fatalf("document:\n%s\nwant\n%s", raw, want)
	}
	d, _ := parseDocument(raw)
	sig := sign(key, d, raw)
	payload, err := wirePayload(raw, sig)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	json.Unmarshal(payload, &env)
	doc, _ := base64.StdEncoding.DecodeString(env.Document)
	if !bytes.Equal(doc, raw) || env.Signature != string(sig) || !minisign.Verify(pub, doc, []byte(env.Signature)) {
		t.Fatal("the envelope does not carry the exact signed bytes")
	}
	got, gotRaw, err := parseEnvelope(payload)
	if err != nil || got.Version != 9 || !bytes.Equal(gotRaw, raw) {
		t.Fatalf("parseEnvelope: %+v %v", got, err)
	}
	if _, err := buildDocument([]byte(`[1]`), target{All: true}, 1, nil, nil); err == nil {
		t.Error("a config that is not an object was wrapped")
	}
}

func TestTargets(t *testing.T) {
	for topic, want := range map[string]target{
		"walletless/v1/fleet/config/all":              {All: true},
		"walletless/v1/fleet/config/groups/seoul":     {Group: "seoul"},
		"walletless/v1/fleet/config/devices/pos-0001": {Device: "pos-0001"},
	} {
		got, ok := targetFromTopic(topic)
		if !ok || got != want || got.topic() != topic {
			t.Errorf("%s: %+v %v", topic, got, ok)
		}
	}
	for _, topic := range []string{"walletless/v1/fleet/config/groups/", "walletless/v1/fleet/config/x", "walletless/v1/fleet/config/devices/a/b", "other"} {
		if _, ok := targetFromTopic(topic); ok {
			t.Errorf("%s accepted", topic)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	if got, err := parseTime("72h", now); err != nil || !got.Equal(now.Add(72*time.Hour)) {
		t.Errorf("72h: %v %v", got, err)
	}
	if got, err := parseTime("2027-01-01T09:00:00+09:00", now); err != nil || !got.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339: %v %v", got, err)
	}
	if got, err := parseTime("", now); err != nil || got != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	if _, err := parseTime("next week", now); err == nil {
		t.Error("garbage accepted")
	}
}

func TestWatcher(t *testing.T) {
	w := newWatcher()
	clock := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return clock }
	w.handle("walletless/v1/devices/a/status", []byte(`{"v":1,"device":"a","state":"online","session":5,"groups":["seoul"]}`), true)
	w.handle("walletless/v1/devices/a/status", []byte(`{"v":1,"device":"a","state":"offline","session":4}`), true) // an old will
	w.handle("walletless/v1/devices/b/status", []byte(`{"v":1,"device":"x","state":"online","session":1}`), true)  // device mismatch
	w.handle("walletless/v1/devices/a/heartbeat", []byte(`{"v":1,"device":"a","session":5,"at":"2026-12-05T10:00:00Z","queue_depth":3,"in_flight":1,"oldest_unsynced_ms":1500,"config_version":"7","groups":["seoul","kr"],"future_field":true}`), false)
	w.handle("walletless/v1/devices/a/config/reported", []byte(`{"v":1,"device":"a","version":8,"code":200,"reason":"applied","at":"2026-12-05T10:00:02Z"}`), true)
	w.handle("walletless/v1/devices/a/config/reported", []byte(`{"v":1,"device":"a","version":8,"code":202,"reason":"applying","at":"2026-12-05T10:00:01Z"}`), false) // late 202
	w.handle("walletless/v1/devices/c/heartbeat", []byte(`not json`), false)
	w.handle("walletless/v1/devices/d e/status", []byte(`{}`), false)
	devs := w.snapshot()
	if len(devs) != 1 || devs[0].ID != "a" {
		t.Fatalf("devices: %+v", devs)
	}
	a := devs[0]
	if !a.online() || a.Status.Session != 5 || !a.inGroup("kr") || a.HB.QueueDepth != 3 || a.Report.Code != 200 {
		t.Fatalf("device a: %+v %+v %+v", a.Status, a.HB, a.Report)
	}
	if w.highestVersion() != 8 {
		t.Fatalf("highest %d", w.highestVersion())
	}
	pub, key, _ := minisign.GenerateKey(nil)
	_ = pub
	raw, _ := buildDocument([]byte(`{}`), target{Group: "seoul"}, 12, nil, nil)
	d, _ := parseDocument(raw)
	payload, _ := wirePayload(raw, sign(key, d, raw))
	w.handle("walletless/v1/fleet/config/groups/tokyo", payload, true) // for another topic: ignored
	if w.highestVersion() != 8 {
		t.Fatal("a document on the wrong topic counted")
	}
	w.handle("walletless/v1/fleet/config/groups/seoul", payload, true)
	if w.highestVersion() != 12 {
		t.Fatal("the retained document's version not seen")
	}
	w.handle("walletless/v1/fleet/config/groups/seoul", nil, true)
	if _, ok := w.desiredAt("walletless/v1/fleet/config/groups/seoul"); ok || w.highestVersion() != 8 {
		t.Fatal("a cleared slot is still held")
	}
	if out := outcome(a, 8); out.State != "applied" {
		t.Errorf("outcome 8: %+v", out)
	}
	if out := outcome(a, 7); out.State != "superseded" {
		t.Errorf("outcome 7: %+v", out)
	}
	if out := outcome(a, 9); out.State != "pending" {
		t.Errorf("outcome 9: %+v", out)
	}
	// A report lost while posd reconnected: the heartbeat shows the version in force.
	w.handle("walletless/v1/devices/a/heartbeat", []byte(`{"v":1,"device":"a","session":5,"config_version":"9"}`), false)
	a = w.snapshot()[0]
	if out := outcome(a, 9); out.State != "applied" {
		t.Errorf("outcome 9 after a heartbeat with version 9: %+v", out)
	}
	w.handle("walletless/v1/devices/a/config/reported", []byte(`{"v":1,"device":"a","version":9,"code":500,"reason":"rolled back","at":"2026-12-05T10:00:09Z"}`), true)
	a = w.snapshot()[0]
	if out := outcome(a, 9); out.State != "failed" {
		t.Errorf("a 500 report must win over the heartbeat: %+v", out)
	}
}

// FuzzEnvelope: any bytes on a desired-config topic are a document or an error,
// never a panic, and an accepted document always passes parseDocument.
func FuzzEnvelope(f *testing.F) {
	raw, _ := buildDocument([]byte(`{"a":1}`), target{All: true}, 1, nil, nil)
	_, key, _ := minisign.GenerateKey(nil)
	d, _ := parseDocument(raw)
	p, _ := wirePayload(raw, sign(key, d, raw))
	f.Add(p)
	f.Add([]byte(`{"v":1,"document":"","signature":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, raw, err := parseEnvelope(b)
		if err != nil {
			return
		}
		if _, err := parseDocument(raw); err != nil || d.Version < 1 {
			t.Fatalf("accepted a bad document: %v", err)
		}
	})
}

// FuzzWatcher: any message on any subscribed topic leaves the watcher consistent.
func FuzzWatcher(f *testing.F) {
	f.Add("walletless/v1/devices/a/status", []byte(`{"v":1,"device":"a","state":"online","session":1}`))
	f.Add("walletless/v1/devices/a/heartbeat", []byte(`{"v":1,"device":"a","config_version":"99999999999999999999999"}`))
	f.Add("walletless/v1/devices/a/config/reported", []byte(`{"v":1,"device":"a","version":1,"code":200}`))
	f.Add("walletless/v1/fleet/config/all", []byte(`{"v":1,"document":"e30=","signature":"x"}`))
	f.Fuzz(func(t *testing.T, topic string, b []byte) {
		w := newWatcher()
		w.handle(topic, b, true)
		for _, d := range w.snapshot() {
			if d.ID == "" {
				t.Fatal("a device without an id")
			}
			_ = outcome(d, 1)
		}
		_ = w.highestVersion()
	})
}
