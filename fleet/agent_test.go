package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
)

type harness struct {
	t        *testing.T
	pub      minisign.PublicKey
	priv     minisign.PrivateKey
	path     string
	now      time.Time
	reports  chan Report
	mu       sync.Mutex
	applied  []Change // guarded by mu
	failNext error    // guarded by mu
	a        *Agent
	stop     func()
}

func newHarness(t *testing.T, path string, pub minisign.PublicKey, priv minisign.PrivateKey) *harness {
	h := &harness{t: t, pub: pub, priv: priv, path: path, now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), reports: make(chan Report, 64)}
	a, err := NewAgent(AgentConfig{
		Device: "pos-1", Groups: []string{"korea", "seoul"}, Keys: []minisign.PublicKey{pub},
		Base:      []byte(`{"device_id":"pos-1","printer":{"language":"en","profile":"epson-80"},"payment":{"offline":{"default":{"action":"refuse"}}}}`),
		StatePath: path,
		Validate: func(eff []byte) error {
			var c struct {
				Printer struct{ Language string } `json:"printer"`
			}
			if err := json.Unmarshal(eff, &c); err != nil {
				return err
			}
			switch c.Printer.Language {
			case "en", "ko", "ja", "zh":
				return nil
			}
			return errors.New("config: printer.language is not one of en, ko, ja, zh")
		},
		Apply: func(_ context.Context, c Change) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if err := h.failNext; err != nil {
				h.failNext = nil
				return err
			}
			h.applied = append(h.applied, c)
			return nil
		},
		Publish: func(topic string, b []byte) error {
			if topic != ReportTopic("pos-1") {
				t.Errorf("report on %s", topic)
			}
			r, err := ParseReport(b)
			if err != nil {
				t.Errorf("report %s: %v", b, err)
			}
			h.reports <- r
			return nil
		},
		Now: func() time.Time { return h.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(h.stop)
	return h
}

func (h *harness) send(topic string, doc []byte, priv minisign.PrivateKey) {
	p, err := Seal(doc, Sign(priv, doc))
	if err != nil {
		h.t.Fatal(err)
	}
	h.a.Handle(context.Background(), topic, p)
}

// final waits for the next report that is not 202.
func (h *harness) final() Report {
	h.t.Helper()
	for {
		select {
		case r := <-h.reports:
			if r.Code != CodeApplying {
				return r
			}
		case <-time.After(10 * time.Second):
			h.t.Fatal("no report")
		}
	}
}

func (h *harness) language() string {
	eff, _, err := h.a.Effective()
	if err != nil {
		h.t.Fatal(err)
	}
	var c struct {
		Printer struct{ Language string } `json:"printer"`
	}
	json.Unmarshal(eff, &c)
	return c.Printer.Language
}

func TestAgentRejectsAndKeepsConfig(t *testing.T) {
	pub, priv := newKey(t)
	_, other := newKey(t)
	h := newHarness(t, filepath.Join(t.TempDir(), "fleet.json"), pub, priv)
	h.send(DeviceTopic("pos-1"), docBytes(5, `{"device":"pos-1"}`, `{"printer":{"language":"ko"}}`), priv)
	if r := h.final(); r.Code != CodeApplied || r.Version != 5 {
		t.Fatalf("first push: %+v", r)
	}
	past, future := h.now.Add(-time.Hour).Format(time.RFC3339), h.now.Add(time.Hour).Format(time.RFC3339)
	forged := func() []byte {
		doc := docBytes(6, `{"device":"pos-1"}`, `{"printer":{"language":"ja"}}`)
		p, _ := Seal(doc, Sign(priv, docBytes(6, `{"device":"pos-1"}`, `{"printer":{"language":"zh"}}`)))
		return p
	}
	cases := []struct {
		name, topic string
		payload     []byte
		doc         []byte
		key         minisign.PrivateKey
		want        error
		reason      string
	}{
		{name: "forged", topic: DeviceTopic("pos-1"), payload: forged(), want: ErrSignature, reason: "bad signature"},
		{name: "untrusted key", topic: DeviceTopic("pos-1"), doc: docBytes(6, `{"device":"pos-1"}`, `{"printer":{"language":"ja"}}`), key: other, want: ErrUntrustedKey, reason: "does not trust"},
		{name: "other device", topic: DeviceTopic("pos-1"), doc: docBytes(6, `{"device":"pos-2"}`, `{"printer":{"language":"ja"}}`), key: priv, want: ErrTarget, reason: "another target"},
		{name: "group on device slot", topic: DeviceTopic("pos-1"), doc: docBytes(6, `{"group":"korea"}`, `{"printer":{"language":"ja"}}`), key: priv, want: ErrTarget, reason: "another target"},
		{name: "expired", topic: AllTopic(), doc: docBytes(6, `{"all":true}`, `{"printer":{"language":"ja"}}`, `"not_after":"`+past+`",`), key: priv, want: ErrExpired, reason: "expired"},
		{name: "not yet valid", topic: GroupTopic("seoul"), doc: docBytes(6, `{"group":"seoul"}`, `{"printer":{"language":"ja"}}`, `"not_before":"`+future+`",`), key: priv, want: ErrNotYetValid, reason: "not yet valid"},
		{name: "replay", topic: AllTopic(), doc: docBytes(5, `{"all":true}`, `{"printer":{"language":"ja"}}`), key: priv, want: ErrReplay, reason: "not above this device's current version 5"},
		{name: "older", topic: AllTopic(), doc: docBytes(2, `{"all":true}`, `{"printer":{"language":"ja"}}`), key: priv, want: ErrReplay, reason: "replay"},
		{name: "malformed envelope", topic: AllTopic(), payload: []byte(`{"v":1,"document":12}`), want: ErrMalformed, reason: "malformed"},
		{name: "malformed document", topic: AllTopic(), doc: []byte(`{"v":1,"version":6,"target":{"all":true},"config":{}`), key: priv, want: ErrMalformed, reason: "malformed"},
		{name: "invalid config", topic: DeviceTopic("pos-1"), doc: docBytes(6, `{"device":"pos-1"}`, `{"printer":{"language":"xx"}}`), key: priv, want: ErrInvalid, reason: "printer.language"},
	}
	for _, c := range cases {
		p := c.payload
		if p == nil {
			var err error
			if p, err = Seal(c.doc, Sign(c.key, c.doc)); err != nil {
				t.Fatal(err)
			}
		}
		h.a.Handle(context.Background(), c.topic, p)
		r := h.final()
		if r.Code != CodeRejected || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("%s: report %+v, want 400 with %q", c.name, r, c.reason)
		}
		if got := h.language(); got != "ko" {
			t.Errorf("%s: language %q after a rejection", c.name, got)
		}
		if st := h.a.State(); st.Current != 5 || st.Applied != 5 {
			t.Errorf("%s: state %d/%d", c.name, st.Current, st.Applied)
		}
	}
	h.mu.Lock()
	n := len(h.applied)
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("Apply called %d times; only the first push should apply", n)
	}
}

func TestAgentMergeRestartRollback(t *testing.T) {
	pub, priv := newKey(t)
	path := filepath.Join(t.TempDir(), "fleet.json")
	h := newHarness(t, path, pub, priv)
	all := docBytes(1, `{"all":true}`, `{"printer":{"language":"zh","profile":"p-all"},"merchant":{"name":"all"}}`)
	h.send(AllTopic(), all, priv)
	if r := h.final(); r.Code != 200 {
		t.Fatal(r)
	}
	h.send(GroupTopic("seoul"), docBytes(2, `{"group":"seoul"}`, `{"printer":{"language":"ja"},"merchant":{"name":"seoul"}}`), priv)
	if r := h.final(); r.Code != 200 {
		t.Fatal(r)
	}
	// korea is merged before seoul (fleet.groups order) though it arrives later.
	h.send(GroupTopic("korea"), docBytes(3, `{"group":"korea"}`, `{"printer":{"language":"ko"},"merchant":{"name":"korea","lines":["x"]}}`), priv)
	if r := h.final(); r.Code != 200 {
		t.Fatal(r)
	}
	eff, v, _ := h.a.Effective()
	var c map[string]any
	json.Unmarshal(eff, &c)
	if v != 3 || h.language() != "ja" || c["merchant"].(map[string]any)["name"] != "seoul" || c["printer"].(map[string]any)["profile"] != "p-all" {
		t.Fatalf("merge: v%d %s", v, eff)
	}
	// A failed apply reports 500, uses the version up, keeps the config.
	h.mu.Lock()
	h.failNext = errors.New("broker not healthy within 1s")
	h.mu.Unlock()
	dev := docBytes(4, `{"device":"pos-1"}`, `{"merchant":{"name":"dev"}}`)
	h.send(DeviceTopic("pos-1"), dev, priv)
	if r := h.final(); r.Code != CodeFailed || !strings.Contains(r.Reason, "not healthy") {
		t.Fatal(r)
	}
	if st := h.a.State(); st.Current != 4 || st.Applied != 3 {
		t.Fatalf("after 500: %+v", st)
	}
	// Its retained redelivery is silent; a byte-identical applied one too.
	h.send(DeviceTopic("pos-1"), dev, priv) // the same bytes (Sign is deterministic): silent
	h.send(DeviceTopic("pos-1"), docBytes(3, `{"device":"pos-1"}`, `{}`), priv)
	if r := h.final(); r.Code != 400 || r.Version != 3 || !strings.Contains(r.Reason, "replay") {
		t.Fatal(r)
	}
	h.stop()

	// Restart: the state is read back; the held documents' identical redelivery is a
	// no-op; an older version is still a replay.
	h2 := newHarness(t, path, pub, priv)
	if h2.language() != "ja" {
		t.Fatalf("after restart: %s", h2.language())
	}
	st := h2.a.State()
	for k, held := range st.Slots {
		p, _ := Seal(held.Document, []byte(held.Signature))
		topic := ConfigPrefix + k
		h2.a.Handle(context.Background(), topic, p)
	}
	h2.send(AllTopic(), docBytes(2, `{"all":true}`, `{"printer":{"language":"en"}}`), priv)
	if r := h2.final(); r.Code != 400 || r.Version != 2 {
		t.Fatalf("replay after restart: %+v (or a redelivery was not silent)", r)
	}
	if len(st.History) != 3 {
		t.Fatalf("history %d", len(st.History))
	}
	// Rollback to 1: the all-slot config alone; current stays 4.
	if err := h2.a.Rollback(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if r := h2.final(); r.Code != 200 || r.Version != 1 {
		t.Fatal(r)
	}
	if st := h2.a.State(); h2.language() != "zh" || st.Applied != 1 || st.Current != 4 {
		t.Fatalf("after rollback: %s %d %d", h2.language(), st.Applied, st.Current)
	}
	if err := h2.a.Rollback(context.Background(), 99); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatal(err)
	}
	// An empty retained payload clears a slot without changing the config.
	h2.a.Handle(context.Background(), AllTopic(), nil)
	h2.send(DeviceTopic("pos-1"), docBytes(5, `{"device":"pos-1"}`, `{"merchant":{"name":"five"}}`), priv)
	if r := h2.final(); r.Code != 200 {
		t.Fatal(r)
	}
	if h2.language() != "en" { // all cleared: the file's language again
		t.Fatalf("after clear: %s", h2.language())
	}
}

func TestAgentHistoryBounded(t *testing.T) {
	pub, priv := newKey(t)
	h := newHarness(t, "", pub, priv)
	for v := int64(1); v <= 13; v++ {
		h.send(AllTopic(), docBytes(v, `{"all":true}`, `{"merchant":{"name":"x"}}`), priv)
		if r := h.final(); r.Code != 200 {
			t.Fatal(r)
		}
	}
	st := h.a.State()
	if len(st.History) != HistorySize || st.History[0].Version != 4 || st.History[9].Version != 13 {
		t.Fatalf("history %d from %d", len(st.History), st.History[0].Version)
	}
}

// TestAgentReportsWhileOffline: reports that could not be published are sent in order
// at the next Connected.
func TestAgentReportsWhileOffline(t *testing.T) {
	pub, priv := newKey(t)
	var mu sync.Mutex
	offline := true
	var sent []Report
	a, err := NewAgent(AgentConfig{
		Device: "pos-1", Keys: []minisign.PublicKey{pub},
		Validate: func([]byte) error { return nil },
		Apply:    func(context.Context, Change) error { return nil },
		Publish: func(_ string, b []byte) error {
			mu.Lock()
			defer mu.Unlock()
			if offline {
				return errors.New("offline")
			}
			r, _ := ParseReport(b)
			sent = append(sent, r)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, v := range []int64{1, 2} {
		d := docBytes(v, `{"all":true}`, `{}`)
		p, _ := Seal(d, Sign(priv, d))
		a.Handle(ctx, AllTopic(), p)
	}
	waitState := time.Now().Add(10 * time.Second)
	for a.State().Applied != 2 && time.Now().Before(waitState) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	offline = false
	mu.Unlock()
	a.Connected()
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, r := range sent {
		got = append(got, fmt.Sprintf("%d/%d", r.Version, r.Code))
	}
	if strings.Join(got, " ") != "1/202 1/200 2/202 2/200" {
		t.Fatalf("sent %v", got)
	}
}
