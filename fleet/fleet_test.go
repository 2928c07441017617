package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

func newKey(t testing.TB) (minisign.PublicKey, minisign.PrivateKey) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func docBytes(version int64, target string, config string, extra ...string) []byte {
	s := fmt.Sprintf(`{"v":1,"version":%d,"target":%s,%s"config":%s}`, version, target, strings.Join(extra, ""), config)
	return []byte(s)
}

func TestParseDocument(t *testing.T) {
	good := `{"v":1,"version":3,"target":{"group":"seoul"},"not_before":"2026-01-01T00:00:00Z","config":{"printer":{"language":"ko"}}}`
	d, err := ParseDocument([]byte(good))
	if err != nil || d.Version != 3 || d.Target.Group != "seoul" || d.NotBefore == nil || d.Target.Slot() != (Slot{SlotGroup, "seoul"}) {
		t.Fatalf("%+v %v", d, err)
	}
	bad := map[string]string{
		"empty":        ``,
		"not json":     `{"v":1`,
		"v2":           `{"v":2,"version":1,"target":{"all":true},"config":{}}`,
		"version 0":    `{"v":1,"version":0,"target":{"all":true},"config":{}}`,
		"two targets":  `{"v":1,"version":1,"target":{"all":true,"group":"g"},"config":{}}`,
		"no target":    `{"v":1,"version":1,"target":{},"config":{}}`,
		"all false":    `{"v":1,"version":1,"target":{"all":false},"config":{}}`,
		"wildcard":     `{"v":1,"version":1,"target":{"group":"+"},"config":{}}`,
		"unknown":      `{"v":1,"version":1,"target":{"all":true},"config":{},"extra":1}`,
		"trailing":     `{"v":1,"version":1,"target":{"all":true},"config":{}} {}`,
		"config array": `{"v":1,"version":1,"target":{"all":true},"config":[]}`,
		"no config":    `{"v":1,"version":1,"target":{"all":true}}`,
		"bad time":     `{"v":1,"version":1,"target":{"all":true},"not_after":"tomorrow","config":{}}`,
		"window":       `{"v":1,"version":1,"target":{"all":true},"not_before":"2026-02-01T00:00:00Z","not_after":"2026-01-01T00:00:00Z","config":{}}`,
	}
	for name, s := range bad {
		if _, err := ParseDocument([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func TestMergePatch(t *testing.T) {
	cases := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// int64 minor units survive (a float64 would round this).
		{`{"m":1}`, `{"m":9007199254740993}`, `{"m":9007199254740993}`},
	}
	for _, c := range cases {
		got, err := MergePatch([]byte(c.target), []byte(c.patch))
		if err != nil || !jsonEqual(t, got, []byte(c.want)) {
			t.Errorf("merge %s with %s = %s, %v; want %s", c.target, c.patch, got, err, c.want)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestSignVerify(t *testing.T) {
	pub, priv := newKey(t)
	other, otherPriv := newKey(t)
	doc := docBytes(1, `{"all":true}`, `{}`)
	sig := Sign(priv, doc)
	if id, err := Verify([]minisign.PublicKey{other, pub}, doc, sig); err != nil || id != KeyID(pub.ID()) {
		t.Fatalf("good signature: %q %v", id, err)
	}
	tampered := bytes.Replace(doc, []byte(`"version":1`), []byte(`"version":9`), 1)
	if _, err := Verify([]minisign.PublicKey{pub}, tampered, sig); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered document: %v", err)
	}
	if _, err := Verify([]minisign.PublicKey{pub}, doc, Sign(otherPriv, doc)); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := Verify([]minisign.PublicKey{pub}, doc, []byte("not a signature")); !errors.Is(err, ErrSignature) {
		t.Fatalf("garbage: %v", err)
	}
	// A forged signature claiming the trusted key's id.
	forged := bytes.Replace(Sign(otherPriv, doc), []byte(KeyID(other.ID())), []byte(KeyID(pub.ID())), -1)
	var s minisign.Signature
	if err := s.UnmarshalText(Sign(otherPriv, doc)); err != nil {
		t.Fatal(err)
	}
	s.KeyID = pub.ID()
	forged, _ = s.MarshalText()
	if _, err := Verify([]minisign.PublicKey{pub}, doc, forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged: %v", err)
	}
	// Key rotation: a list with the old and the new key accepts both.
	keys, err := ParseKeys([]string{pub.String(), string(must(other.MarshalText()))})
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParseKeys: %v", err)
	}
	if _, err := ParseKeys([]string{pub.String(), pub.String()}); err == nil {
		t.Fatal("a duplicate key was accepted")
	}
	if _, err := ParseKeys([]string{"RWQnot-a-key"}); err == nil {
		t.Fatal("a bad key was accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// minisignCLI returns the minisign command or skips (fails in CI).
func minisignCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("minisign")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("minisign CLI missing (apt-get install minisign)")
		}
		t.Skip("minisign CLI missing; apt-get install minisign")
	}
	return p
}

// TestMinisignCLI: documents signed by the minisign CLI (prehashed by default, and
// legacy with -l) verify here, and our signatures verify with the CLI.
func TestMinisignCLI(t *testing.T) {
	cli := minisignCLI(t)
	dir := t.TempDir()
	pubFile, secFile := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(cli, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("minisign %v: %v\n%s", args, err, out)
		}
	}
	run("-G", "-W", "-p", pubFile, "-s", secFile)
	pubText, _ := os.ReadFile(pubFile)
	keys, err := ParseKeys([]string{strings.Split(strings.TrimSpace(string(pubText)), "\n")[1]})
	if err != nil {
		t.Fatal(err)
	}
	docFile := filepath.Join(dir, "doc.json")
	doc := docBytes(7, `{"all":true}`, `{"printer":{"language":"ja"}}`)
	os.WriteFile(docFile, doc, 0o600)
	for _, legacy := range []bool{false, true} {
		args := []string{"-S", "-s", secFile, "-m", docFile}
		if legacy {
			args = append(args, "-l")
		}
		run(args...)
		sig, _ := os.ReadFile(docFile + ".minisig")
		if _, err := Verify(keys, doc, sig); err != nil {
			t.Fatalf("CLI signature (legacy %v): %v", legacy, err)
		}
		if _, err := Verify(keys, append(doc, ' '), sig); !errors.Is(err, ErrSignature) {
			t.Fatalf("CLI signature of other bytes (legacy %v): %v", legacy, err)
		}
	}
	// Ours verify with the CLI.
	pub, priv := newKey(t)
	os.WriteFile(pubFile, must(pub.MarshalText()), 0o600)
	os.WriteFile(docFile+".minisig", Sign(priv, doc), 0o600)
	run("-V", "-p", pubFile, "-m", docFile)
}

func TestTopics(t *testing.T) {
	for _, s := range []Slot{{SlotAll, ""}, {SlotGroup, "seoul"}, {SlotDevice, "pos-1"}} {
		got, err := ParseTopic(s.Topic())
		if err != nil || got != s {
			t.Errorf("%v: %v %v", s, got, err)
		}
	}
	for _, bad := range []string{"walletless/v1/fleet/config/groups/", "walletless/v1/fleet/config/groups/a/b", "walletless/v1/fleet/config/x", "other"} {
		if _, err := ParseTopic(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if AllTopic() != "walletless/v1/fleet/config/all" || GroupTopic("g") != "walletless/v1/fleet/config/groups/g" ||
		DeviceTopic("d") != "walletless/v1/fleet/config/devices/d" || ReportTopic("d") != "walletless/v1/devices/d/config/reported" {
		t.Fatal("topic names changed: they are the wire contract")
	}
	if d, err := DeviceFromReportTopic(ReportTopic("pos-9")); err != nil || d != "pos-9" {
		t.Fatal(d, err)
	}
}

func TestEnvelopeAndReport(t *testing.T) {
	_, priv := newKey(t)
	doc := docBytes(1, `{"all":true}`, `{}`)
	p, err := Seal(doc, Sign(priv, doc))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEnvelope(p)
	if err != nil || !bytes.Equal(e.Document, doc) {
		t.Fatal(e, err)
	}
	if _, err := ParseEnvelope(nil); !errors.Is(err, ErrEmpty) {
		t.Fatal(err)
	}
	for _, bad := range []string{`{}`, `{"v":1,"document":"!!","signature":"x"}`, `{"v":1,"document":"e30=","signature":""}`, `{"v":2,"document":"e30=","signature":"x"}`, `{"v":1,"document":"e30=","signature":"x","more":1}`} {
		if _, err := ParseEnvelope([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	r := Report{V: 1, Device: "pos-1", Version: 3, Code: CodeRejected, Reason: "x", At: time.Now().UTC()}
	got, err := ParseReport(r.Marshal())
	if err != nil || got.Code != 400 || got.Version != 3 {
		t.Fatal(got, err)
	}
	if _, err := ParseReport([]byte(`{"v":1,"device":"d","version":1,"code":201,"at":"2026-01-01T00:00:00Z"}`)); err == nil {
		t.Fatal("code 201 accepted")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	doc := docBytes(1, `{"all":true}`, `{"a":1}`)
	p, _ := Seal(doc, Sign(priv, doc))
	f.Add(p)
	f.Add([]byte(`{"v":1,"document":"e30=","signature":"untrusted comment: x\nRW\ntrusted comment: y\nzz"}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		if len(e.Document) == 0 || e.Signature == "" {
			t.Fatal("accepted an envelope without document or signature")
		}
		_, _ = Verify(nil, e.Document, []byte(e.Signature))
		var s minisign.Signature
		_ = s.UnmarshalText([]byte(e.Signature))
	})
}

func FuzzParseDocument(f *testing.F) {
	f.Add(docBytes(1, `{"all":true}`, `{"a":1}`))
	f.Add(docBytes(2, `{"group":"g"}`, `{}`, `"not_before":"2026-01-01T00:00:00Z",`))
	f.Add([]byte(`{"v":1,"version":1,"target":{"device":"d"},"config":{"x":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDocument(b)
		if err != nil {
			return
		}
		if d.Version < 1 || d.V != Version {
			t.Fatalf("accepted %+v", d)
		}
		s := d.Target.Slot()
		if got, err := ParseTopic(s.Topic()); err != nil || got != s {
			t.Fatalf("slot %v of an accepted document has no topic: %v", s, err)
		}
		if _, err := MergePatch([]byte(`{"a":{"b":1}}`), d.Config); err != nil {
			t.Fatalf("config of an accepted document does not merge: %v", err)
		}
	})
}

func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":[1]}}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		out, err := MergePatch(a, b)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
	})
}

var _ = context.Background
