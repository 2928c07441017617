package sync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/gateway"
	wsync "github.com/walletless/walletless/sync"
)

// memOutbox is an in-memory Outbox with Acker and Depther.
type memOutbox struct {
	mu      stdsync.Mutex
	next    uint64
	entries map[uint64][]byte // guarded by mu
	acks    int               // guarded by mu: Ack calls
}

func newMemOutbox() *memOutbox { return &memOutbox{entries: map[uint64][]byte{}} }

func (o *memOutbox) put(kind, key string, payload any) {
	p, _ := json.Marshal(payload)
	b, _ := json.Marshal(wsync.OutboxMessage{Kind: kind, Key: key, Payload: p})
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	o.entries[o.next] = b
}

func (o *memOutbox) Pending(max int, skip func(uint64) bool) ([]wsync.Pending, error) {
	o.mu.Lock()
	seqs := make([]uint64, 0, len(o.entries))
	for s := range o.entries {
		seqs = append(seqs, s)
	}
	o.mu.Unlock()
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var out []wsync.Pending
	for _, s := range seqs {
		if len(out) == max {
			break
		}
		if skip != nil && skip(s) {
			continue
		}
		o.mu.Lock()
		d, ok := o.entries[s]
		o.mu.Unlock()
		if ok {
			out = append(out, wsync.Pending{Seq: s, Data: d})
		}
	}
	return out, nil
}

func (o *memOutbox) Ack(seqs ...uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acks++
	for _, s := range seqs {
		delete(o.entries, s)
	}
	return nil
}

func (o *memOutbox) Depth() (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.entries), nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestLinkReconnectsAndAcksInBatches: the link starts before any broker listens,
// connects once one does (backoff with jitter), drains every kind of message through
// posgw and marks the entries synced itself, many per Ack.
func TestLinkReconnectsAndAcksInBatches(t *testing.T) {
	addr := freeAddr(t)
	ob := newMemOutbox()
	const n = 100
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("k-%03d", i)
		ob.put(wsync.KindPayment, key, wsync.PaymentRequest{V: 1, Key: key, Device: "dev-u", AmountMinor: int64(100 + i), Currency: "JPY", Kind: "wallet", Scheme: "paypay", Code: "x", MaskedCode: "x", CreatedAt: time.Now().UTC()})
	}
	ob.put(wsync.KindQuery, "k-000", wsync.QueryRequest{V: 1, Key: "k-000", Device: "dev-u"})
	ob.put(wsync.KindAttempt, "a-1", wsync.AttemptRecord{V: 1, Key: "a-1", Device: "dev-u", Outcome: wsync.AttemptCancelled})
	var mu stdsync.Mutex
	got := map[string]wsync.PaymentResult{}
	link, err := wsync.NewLink(wsync.Config{
		BrokerURL: "tcp://" + addr, DeviceID: "dev-u", Outbox: ob, Window: 16, ResendAfter: 2 * time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Heartbeat: -1,
		OnResults: func(_ context.Context, rs []wsync.PaymentResult) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range rs {
				got[r.Kind+"/"+r.Key] = r
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); link.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(100 * time.Millisecond) // a few failed attempts first
	if link.Online() {
		t.Fatal("online without a broker")
	}
	b, err := broker.Start(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ledger, err := gateway.OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	gw, _ := gateway.New(gateway.Config{BrokerURL: b.URL(), Ledger: ledger})
	gctx, gcancel := context.WithCancel(context.Background())
	gdone := make(chan struct{})
	go func() { defer close(gdone); gw.Run(gctx) }()
	defer func() { gcancel(); <-gdone }()

	waitFor(t, "outbox drained", 30*time.Second, func() bool { d, _ := ob.Depth(); return d == 0 })
	waitFor(t, "acks counted", 10*time.Second, func() bool { return link.Stats().Acked >= n+2 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n+2 {
		t.Errorf("%d results, want %d", len(got), n+2)
	}
	if r := got["query/k-000"]; r.Status != wsync.ResultApproved {
		t.Errorf("query answered %+v", r)
	}
	if r := got["attempt/a-1"]; r.Status != wsync.ResultRecorded {
		t.Errorf("attempt answered %+v", r)
	}
	s := link.Stats()
	if s.Acked != n+2 || s.Connects < 1 {
		t.Errorf("stats %+v", s)
	}
	ob.mu.Lock()
	acks := ob.acks
	ob.mu.Unlock()
	t.Logf("%d entries marked synced in %d Ack calls", n+2, acks)
	if acks > n+2 {
		t.Errorf("%d Ack calls for %d entries", acks, n+2)
	}
}

func TestNewLinkRejectsBadConfig(t *testing.T) {
	ok := wsync.Config{BrokerURL: "tcp://127.0.0.1:1", DeviceID: "d", Outbox: newMemOutbox(), OnResult: func(context.Context, wsync.PaymentResult) {}}
	for name, mutate := range map[string]func(*wsync.Config){
		"no broker":        func(c *wsync.Config) { c.BrokerURL = "" },
		"bad device":       func(c *wsync.Config) { c.DeviceID = "a/b" },
		"no outbox":        func(c *wsync.Config) { c.Outbox = nil },
		"no result hook":   func(c *wsync.Config) { c.OnResult = nil },
		"missing CA file":  func(c *wsync.Config) { c.BrokerURL = "ssl://127.0.0.1:1"; c.CAFile = "/nonexistent/ca.pem" },
		"cert without key": func(c *wsync.Config) { c.BrokerURL = "ssl://127.0.0.1:1"; c.CertFile = "/nonexistent/c.pem" },
	} {
		c := ok
		mutate(&c)
		if _, err := wsync.NewLink(c); err == nil || !strings.HasPrefix(err.Error(), "sync: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := wsync.NewLink(ok); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestTLSConfig(t *testing.T) {
	if c, err := wsync.TLSConfig(nil, "", "", ""); c != nil || err != nil {
		t.Errorf("no TLS: %v %v", c, err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := wsync.TLSConfig(nil, bad, "", ""); err == nil {
		t.Error("a CA file without certificates accepted")
	}
	if _, err := wsync.TLSConfig(nil, "", bad, bad); err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Errorf("bad key pair: %v", err)
	}
}

func TestHeartbeatNow(t *testing.T) {
	ob := newMemOutbox()
	created := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	ob.put(wsync.KindPayment, "k", wsync.PaymentRequest{V: 1, Key: "k", CreatedAt: created})
	ob.put(wsync.KindPayment, "k2", wsync.PaymentRequest{V: 1, Key: "k2", CreatedAt: created.Add(time.Minute)})
	link, err := wsync.NewLink(wsync.Config{BrokerURL: "tcp://127.0.0.1:1", DeviceID: "d", Outbox: ob, Session: 9, Version: "1.2.3",
		Groups:   []string{"korea", "seoul"},
		OnResult: func(context.Context, wsync.PaymentResult) {},
		Health:   func() wsync.Health { return wsync.Health{ConfigVersion: "17", Scanner: "ok", Printer: "paper_out"} }})
	if err != nil {
		t.Fatal(err)
	}
	hb := link.HeartbeatNow(created.Add(90 * time.Second))
	want := wsync.Heartbeat{V: 1, Device: "d", Session: 9, At: created.Add(90 * time.Second), QueueDepth: 2, OldestUnsyncedMS: 90_000,
		Firmware: "1.2.3", ConfigVersion: "17", Groups: []string{"korea", "seoul"}, Scanner: "ok", Printer: "paper_out"}
	if !reflect.DeepEqual(hb, want) {
		t.Errorf("heartbeat\n got %+v\nwant %+v", hb, want)
	}
	raw, _ := json.Marshal(hb)
	var back wsync.Heartbeat
	if err := wsync.Decode(raw, &back); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestTopics(t *testing.T) {
	for _, k := range wsync.Kinds() {
		topic, err := wsync.UpTopic("shop-7", k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wsync.KindFromTopic(topic)
		if err != nil || got != k {
			t.Errorf("KindFromTopic(%q) = %q, %v", topic, got, err)
		}
	}
	for _, bad := range []string{wsync.ResultTopic("shop-7"), wsync.StatusTopic("shop-7"), "walletless/v1/devices/shop-7/payments/request/x"} {
		if k, err := wsync.KindFromTopic(bad); err == nil {
			t.Errorf("KindFromTopic(%q) = %q", bad, k)
		}
	}
	for _, f := range wsync.CloudFilters() {
		if strings.Contains(f, "result") || strings.Contains(f, "#") {
			t.Errorf("cloud filter %q would deliver results to the cloud", f)
		}
	}
	if _, err := wsync.UpTopic("shop-7", "bogus"); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestDecodeUpValidation(t *testing.T) {
	for _, c := range []struct {
		kind, payload string
		ok            bool
	}{
		{wsync.KindQuery, `{"v":1,"key":"k","device":"d","asked_at":"2026-01-01T00:00:00Z"}`, true},
		{wsync.KindQuery, `{"v":1,"key":"","device":"d"}`, false},
		{wsync.KindQuery, `{"v":1,"key":"has space","device":"d"}`, false},
		{wsync.KindReversal, `{"v":1,"key":"k","device":"d","amount_minor":0,"currency":"","created_at":"2026-01-01T00:00:00Z"}`, true},
		{wsync.KindReversal, `{"v":1,"key":"k","device":"d","amount_minor":-1,"currency":"KRW","created_at":"2026-01-01T00:00:00Z"}`, false},
		{wsync.KindRefund, `{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5,"currency":"KRW","created_at":"2026-01-01T00:00:00Z"}`, true},
		{wsync.KindRefund, `{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5,"currency":"krw","created_at":"2026-01-01T00:00:00Z"}`, false},
		{wsync.KindRefund, `{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5.5,"currency":"KRW"}`, false},
		{wsync.KindAttempt, `{"v":1,"key":"a","device":"d","amount_minor":1,"currency":"KRW","outcome":"cancelled","created_at":"2026-01-01T00:00:00Z"}`, true},
		{wsync.KindAttempt, `{"v":1,"key":"a","device":"d","amount_minor":1,"currency":"KRW","outcome":"","created_at":"2026-01-01T00:00:00Z"}`, false},
		{wsync.KindBatch, `{"v":1,"key":"b","device":"d","opened_at":"2026-01-01T00:00:00Z","closed_at":"2026-01-02T00:00:00Z","totals":[]}`, true},
		{wsync.KindBatch, `{"v":1,"key":"b","device":"d","opened_at":"2026-01-01T00:00:00Z","closed_at":"2026-01-02T00:00:00Z","totals":[{"scheme":"a","currency":"KRW","sales_count":1,"sales_minor":1,"refunds_count":0,"refunds_minor":0},{"scheme":"a","currency":"KRW","sales_count":1,"sales_minor":1,"refunds_count":0,"refunds_minor":0}]}`, false},
		{wsync.KindPayment, `{"v":1,"key":"k","device":"d","amount_minor":9223372036854775808,"currency":"KRW","kind":"wallet","scheme":"x","code":"c","masked_code":"m","created_at":"2026-01-01T00:00:00Z"}`, false},
		{wsync.KindPayment, `{"v":1,"key":"k","device":"d","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"x","code":"c","masked_code":"m","created_at":"2026-01-01T00:00:00Z","batch":"019a9000-2222-7000-8000-000000000007"}`, true},
		{wsync.KindPayment, `{"v":1,"key":"k","device":"d","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"x","code":"c","masked_code":"m","created_at":"2026-01-01T00:00:00Z","batch":"has space"}`, false},
		{wsync.KindPayment, `{"v":1,"key":"k","device":"d","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"x","code":"c","masked_code":"m","created_at":"2026-01-01T00:00:00Z","batch":"` + strings.Repeat("b", 65) + `"}`, false},
		{wsync.KindRefund, `{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5,"currency":"KRW","created_at":"2026-01-01T00:00:00Z","batch":"b7"}`, true},
		{wsync.KindRefund, `{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5,"currency":"KRW","created_at":"2026-01-01T00:00:00Z","batch":"b\u00007"}`, false},
		{"bogus", `{}`, false},
	} {
		_, _, _, err := wsync.DecodeUp(c.kind, []byte(c.payload))
		if (err == nil) != c.ok {
			t.Errorf("%s %s: %v", c.kind, c.payload, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "sync: ") {
			t.Errorf("error without package prefix: %v", err)
		}
		if err != nil && c.kind != "bogus" && !errors.Is(err, wsync.ErrMalformed) {
			t.Errorf("%s: %v is not ErrMalformed", c.payload, err)
		}
	}
}

func FuzzDecodeUp(f *testing.F) {
	f.Add(uint8(0), []byte(`{"v":1,"key":"k","device":"d","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"x","code":"c","masked_code":"m","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(1), []byte(`{"v":1,"key":"k","device":"d","asked_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(2), []byte(`{"v":1,"key":"k","device":"d","amount_minor":0,"currency":"","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(3), []byte(`{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5,"currency":"KRW","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(0), []byte(`{"v":1,"key":"k","device":"d","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"x","code":"c","masked_code":"m","created_at":"2026-01-01T00:00:00Z","batch":"019a9000-2222-7000-8000-000000000007"}`))
	f.Add(uint8(3), []byte(`{"v":1,"key":"r","device":"d","original_key":"k","amount_minor":5,"currency":"KRW","created_at":"2026-01-01T00:00:00Z","batch":"b 1"}`))
	f.Add(uint8(4), []byte(`{"v":1,"key":"a","device":"d","amount_minor":1,"currency":"KRW","outcome":"cancelled","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(5), []byte(`{"v":1,"key":"b","device":"d","opened_at":"2026-01-01T00:00:00Z","closed_at":"2026-01-02T00:00:00Z","totals":[{"scheme":"a","currency":"KRW","sales_count":1,"sales_minor":1,"refunds_count":0,"refunds_minor":0}]}`))
	f.Add(uint8(6), []byte(`{"v":1,"device":"d","session":1,"at":"2026-01-01T00:00:00Z","queue_depth":0,"in_flight":0,"oldest_unsynced_ms":0}`))
	f.Fuzz(func(t *testing.T, k uint8, b []byte) {
		kinds := wsync.Kinds()
		if int(k) < len(kinds) {
			msg, key, dev, err := wsync.DecodeUp(kinds[k], b)
			if err == nil && (msg == nil || key == "" || !wsync.ValidDeviceID(dev)) {
				t.Fatalf("accepted %q with key %q device %q", b, key, dev)
			}
			return
		}
		var hb wsync.Heartbeat
		_ = wsync.Decode(b, &hb)
		var st wsync.Status
		_ = wsync.Decode(b, &st)
	})
}
