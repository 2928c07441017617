package gateway

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wsync "github.com/walletless/walletless/sync"
	bolt "go.etcd.io/bbolt"
)

type fakeMsg struct {
	topic   string
	payload []byte
}

func (m fakeMsg) Duplicate() bool   { return false }
func (m fakeMsg) Qos() byte         { return 1 }
func (m fakeMsg) Retained() bool    { return false }
func (m fakeMsg) Topic() string     { return m.topic }
func (m fakeMsg) MessageID() uint16 { return 1 }
func (m fakeMsg) Payload() []byte   { return m.payload }
func (m fakeMsg) Ack()              {}

func newTestGateway(t *testing.T) *Gateway {
	t.Helper()
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return newTestGatewayOn(t, l)
}

// newTestGatewayOn returns a gateway (not running) deciding on l. These tests use
// fixed timestamps: the staleness rule has its own tests.
func newTestGatewayOn(t *testing.T, l Store) *Gateway {
	t.Helper()
	g, err := New(Config{BrokerURL: "tcp://127.0.0.1:1", Ledger: l, Rules: Rules{MaxAge: -1}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// send runs one message through parse and apply as handleBatch does; ok is false when
// the message was ignored.
func send(t *testing.T, g *Gateway, device, kind string, v any) (wsync.PaymentResult, bool) {
	t.Helper()
	raw, ok := v.([]byte)
	if !ok {
		raw, _ = json.Marshal(v)
	}
	topic, err := wsync.UpTopic(device, kind)
	if err != nil {
		t.Fatal(err)
	}
	msgs := g.parse(fakeMsg{topic, raw}, nil)
	if len(msgs) == 0 {
		return wsync.PaymentResult{}, false
	}
	answers, err := g.applier.Apply(context.Background(), msgs[:1])
	if err != nil {
		t.Fatal(err)
	}
	return answers[0].Result, true
}

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func sale(dev, key string, amount int64, cur string, at time.Time) wsync.PaymentRequest {
	return wsync.PaymentRequest{V: 1, Key: key, Device: dev, AmountMinor: amount, Currency: cur, Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: at}
}

// kindStep is one device message and the answer it must get.
type kindStep struct {
	name           string
	device, kind   string
	msg            any
	status, reason string // reason: substring
}

// kindSteps exercise every kind of message and rule, in order.
func kindSteps() []kindStep {
	return []kindStep{
		{"sale approved", "d1", wsync.KindPayment, sale("d1", "k1", 10000, "KRW", t0), "approved", ""},
		{"resend answered from ledger", "d1", wsync.KindPayment, sale("d1", "k1", 10000, "KRW", t0), "approved", ""},
		{"over limit declined", "d1", wsync.KindPayment, sale("d1", "k2", 2_000_000, "KRW", t0), "declined", "limit"},
		{"query approved", "d1", wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "k1", Device: "d1"}, "approved", ""},
		{"query unknown", "d1", wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "nope", Device: "d1"}, "unknown", ""},
		{"query of another device's key", "d2", wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "k1", Device: "d2"}, "unknown", ""},
		{"key reuse by another device", "d2", wsync.KindPayment, sale("d2", "k1", 5, "KRW", t0), "declined", "already used"},
		{"partial refund", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r1", Device: "d1", OriginalKey: "k1", AmountMinor: 4000, Currency: "KRW", CreatedAt: t0}, "approved", ""},
		{"refund resend", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r1", Device: "d1", OriginalKey: "k1", AmountMinor: 4000, Currency: "KRW", CreatedAt: t0}, "approved", ""},
		{"refund above the rest", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r2", Device: "d1", OriginalKey: "k1", AmountMinor: 6001, Currency: "KRW", CreatedAt: t0}, "declined", "6000"},
		{"refund of the rest", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r3", Device: "d1", OriginalKey: "k1", AmountMinor: 6000, Currency: "KRW", CreatedAt: t0}, "approved", ""},
		{"refund other currency", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r4", Device: "d1", OriginalKey: "k1", AmountMinor: 1, Currency: "JPY", CreatedAt: t0}, "declined", "currency"},
		{"refund of a declined sale", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r5", Device: "d1", OriginalKey: "k2", AmountMinor: 1, Currency: "KRW", CreatedAt: t0}, "declined", "declined"},
		{"refund of an unknown sale", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r6", Device: "d1", OriginalKey: "zz", AmountMinor: 1, Currency: "KRW", CreatedAt: t0}, "declined", "unknown"},
		{"reversal of a refunded sale", "d1", wsync.KindReversal, wsync.ReversalRequest{V: 1, Key: "k1", Device: "d1"}, "declined", "refund"},
		{"sale to reverse", "d1", wsync.KindPayment, sale("d1", "k3", 700, "JPY", t0.Add(time.Minute)), "approved", ""},
		{"reversal", "d1", wsync.KindReversal, wsync.ReversalRequest{V: 1, Key: "k3", Device: "d1", AmountMinor: 700, Currency: "JPY"}, "reversed", ""},
		{"reversal again", "d1", wsync.KindReversal, wsync.ReversalRequest{V: 1, Key: "k3", Device: "d1"}, "reversed", "already"},
		{"query reversed", "d1", wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "k3", Device: "d1"}, "reversed", ""},
		{"reversal of another device's sale", "d2", wsync.KindReversal, wsync.ReversalRequest{V: 1, Key: "k1", Device: "d2"}, "declined", ""},
		{"reversal before the request", "d1", wsync.KindReversal, wsync.ReversalRequest{V: 1, Key: "k4", Device: "d1", AmountMinor: 900, Currency: "KRW"}, "reversed", "recorded"},
		{"late request of a reversed key", "d1", wsync.KindPayment, sale("d1", "k4", 900, "KRW", t0), "reversed", ""},
		{"attempt", "d1", wsync.KindAttempt, wsync.AttemptRecord{V: 1, Key: "a1", Device: "d1", AmountMinor: 100, Currency: "KRW", MaskedCode: "…3456#ab12", Outcome: wsync.AttemptRefusedOffline}, "recorded", ""},
		{"attempt resend", "d1", wsync.KindAttempt, wsync.AttemptRecord{V: 1, Key: "a1", Device: "d1", AmountMinor: 100, Currency: "KRW", Outcome: wsync.AttemptRefusedOffline}, "recorded", ""},
		{"batch matches", "d1", wsync.KindBatch, wsync.BatchClose{V: 1, Key: "b1", Device: "d1", OpenedAt: t0.Add(-time.Hour), ClosedAt: t0.Add(time.Hour), Totals: []wsync.BatchTotal{
			{Scheme: "alipay", Currency: "KRW", SalesCount: 1, SalesMinor: 10000, RefundsCount: 2, RefundsMinor: 10000},
		}}, "recorded", ""},
		{"batch mismatch", "d1", wsync.KindBatch, wsync.BatchClose{V: 1, Key: "b2", Device: "d1", OpenedAt: t0.Add(-time.Hour), ClosedAt: t0.Add(time.Hour), Totals: []wsync.BatchTotal{
			{Scheme: "alipay", Currency: "KRW", SalesCount: 2, SalesMinor: 10900},
		}}, "declined", "alipay/KRW: device 2 sales 10900"},
		{"batch resend keeps its answer", "d1", wsync.KindBatch, wsync.BatchClose{V: 1, Key: "b2", Device: "d1", OpenedAt: t0.Add(-time.Hour), ClosedAt: t0.Add(time.Hour)}, "declined", "10900"},
	}
}

func TestKinds(t *testing.T) { testKinds(t, newTestGateway(t)) }

// testKinds runs kindSteps on g and checks the ledger it leaves (bbolt and PostgreSQL
// both pass it: see TestPGLedger).
func testKinds(t *testing.T, g *Gateway) {
	for _, s := range kindSteps() {
		res, ok := send(t, g, s.device, s.kind, s.msg)
		if !ok {
			t.Errorf("%s: ignored", s.name)
			continue
		}
		if res.Status != s.status || !strings.Contains(res.Reason, s.reason) || res.Kind != s.kind {
			t.Errorf("%s: got %s/%s %q, want %s %q", s.name, res.Kind, res.Status, res.Reason, s.status, s.reason)
		}
	}
	totals, err := g.cfg.Ledger.Totals()
	if err != nil {
		t.Fatal(err)
	}
	want := []Total{
		{Device: "d1", Currency: "JPY", Reversed: 1},
		{Device: "d1", Currency: "KRW", SalesCount: 1, SalesMinor: 10000, RefundsCount: 2, RefundsMinor: 10000, NetMinor: 0, Declined: 1, Reversed: 1},
	}
	if len(totals) != len(want) {
		t.Fatalf("totals %+v", totals)
	}
	for i := range want {
		if totals[i] != want[i] {
			t.Errorf("totals[%d] = %+v, want %+v", i, totals[i], want[i])
		}
	}
	var n, attempts int
	g.cfg.Ledger.ForEach(func(e Entry) error {
		n++
		if strings.Contains(e.MaskedCode, "281234567890123456") {
			t.Errorf("ledger holds a full code: %+v", e)
		}
		return nil
	})
	g.cfg.Ledger.ForEachAttempt(func(Attempt) error { attempts++; return nil })
	// sales k1 k2 k3 k4; refunds r1 r2 r3 r4 r5 r6 (declined ones are kept for dedup)
	if n != 10 || attempts != 1 {
		t.Errorf("ledger has %d records and %d attempts, want 10 and 1", n, attempts)
	}
}

func TestIgnored(t *testing.T) {
	g := newTestGateway(t)
	for _, c := range []struct {
		name, device, kind string
		payload            any
	}{
		{"garbage", "d1", wsync.KindPayment, []byte("garbage")},
		{"oversize", "d1", wsync.KindPayment, []byte(`{"v":1,"key":"` + strings.Repeat("x", wsync.MaxPayload) + `"}`)},
		{"device differs from topic", "d1", wsync.KindPayment, sale("d2", "k", 1, "KRW", t0)},
		{"zero amount", "d1", wsync.KindPayment, sale("d1", "k", 0, "KRW", t0)},
		{"version 2", "d1", wsync.KindQuery, []byte(`{"v":2,"key":"k","device":"d1"}`)},
		{"refund of itself", "d1", wsync.KindRefund, wsync.RefundRequest{V: 1, Key: "r", Device: "d1", OriginalKey: "r", AmountMinor: 1, Currency: "KRW"}},
		{"batch ends before it opens", "d1", wsync.KindBatch, wsync.BatchClose{V: 1, Key: "b", Device: "d1", OpenedAt: t0, ClosedAt: t0.Add(-time.Second)}},
		{"attempt without outcome", "d1", wsync.KindAttempt, wsync.AttemptRecord{V: 1, Key: "a", Device: "d1"}},
	} {
		if res, ok := send(t, g, c.device, c.kind, c.payload); ok {
			t.Errorf("%s: answered %+v", c.name, res)
		}
	}
	if n := g.Stats().Ignored; n != 8 {
		t.Errorf("ignored %d, want 8", n)
	}
	// A message on a topic that is not a device message.
	if g.parse(fakeMsg{"walletless/v1/devices/d1/payments/result", []byte(`{}`)}, nil) != nil {
		t.Error("result topic parsed as a request")
	}
	var n int
	g.cfg.Ledger.ForEach(func(Entry) error { n++; return nil })
	if n != 0 {
		t.Errorf("ignored messages changed the ledger: %d entries", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("payments/request", []byte(`{"v":1,"key":"k","device":"d1","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"alipay","code":"x","masked_code":"x","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add("payments/refund", []byte(`{"v":1,"key":"r","device":"d1","original_key":"k","amount_minor":1,"currency":"KRW","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add("payments/request", []byte(`{"v":1,"key":"k2","device":"d1","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"alipay","code":"x","masked_code":"x","created_at":"2026-01-01T00:00:00Z","batch":"b"}`))
	f.Add("payments/refund", []byte(`{"v":1,"key":"r2","device":"d1","original_key":"k2","amount_minor":1,"currency":"KRW","created_at":"2026-01-01T00:00:00Z","batch":"b"}`))
	f.Add("batches/close", []byte(`{"v":1,"key":"b","device":"d1","opened_at":"2026-01-01T00:00:00Z","closed_at":"2026-01-02T00:00:00Z","totals":[{"scheme":"alipay","currency":"KRW","sales_count":1,"sales_minor":1,"refunds_count":0,"refunds_minor":0}]}`))
	f.Add("audit/attempt", []byte(`{"v":1,"key":"a","device":"d1","amount_minor":1,"currency":"KRW","outcome":"cancelled","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add("payments/query", []byte(`{"v":1,"key":"k","device":"d1"}`))
	f.Add("bundle", []byte(`{"v":1,"device":"d1","items":[{"kind":"query","payload":{"v":1,"key":"k","device":"d1"}},{"kind":"payment","payload":{"v":1}}]}`))
	f.Add("payments/reversal", []byte(`{"v":1,"key":"k","device":"d1","amount_minor":0,"currency":"","created_at":"2026-01-01T00:00:00Z"}`))
	l, err := OpenLedger(filepath.Join(f.TempDir(), "posgw.db"), false)
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	// These tests use fixed timestamps: the staleness rule has its own tests.
	g, err := New(Config{BrokerURL: "tcp://127.0.0.1:1", Ledger: l, Rules: Rules{MaxAge: -1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sub string, payload []byte) {
		msgs := g.parse(fakeMsg{"walletless/v1/devices/d1/" + sub, payload}, nil)
		if _, err := g.applier.Apply(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBundle: the items of a bundle are handled as if each had arrived alone; a bad
// item is dropped alone, and a bundle on another device's topic is dropped whole.
func TestBundle(t *testing.T) {
	g := newTestGateway(t)
	item := func(kind string, v any) wsync.BundleItem {
		raw, _ := json.Marshal(v)
		return wsync.BundleItem{Kind: kind, Payload: raw}
	}
	raw, err := wsync.EncodeBundle("d1", []wsync.BundleItem{
		item(wsync.KindPayment, sale("d1", "b1", 1000, "KRW", t0)),
		item(wsync.KindPayment, sale("d1", "b2", 0, "KRW", t0)),    // invalid: zero amount
		item(wsync.KindPayment, sale("d2", "b3", 1000, "KRW", t0)), // another device inside d1's bundle
		item(wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "b1", Device: "d1"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := g.parse(fakeMsg{wsync.BundleTopic("d1"), raw}, nil)
	if len(msgs) != 2 || msgs[0].Key != "b1" || msgs[0].Kind != wsync.KindPayment || msgs[1].Kind != wsync.KindQuery {
		t.Fatalf("msgs = %+v", msgs)
	}
	answers, err := g.applier.Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if answers[0].Result.Status != wsync.ResultApproved || answers[1].Result.Status != wsync.ResultApproved {
		t.Errorf("results %+v %+v", answers[0].Result, answers[1].Result)
	}
	if n := g.Stats().Ignored; n != 2 {
		t.Errorf("ignored %d, want 2", n)
	}
	if jobs := g.parse(fakeMsg{wsync.BundleTopic("d2"), raw}, nil); len(jobs) != 0 {
		t.Errorf("d1's bundle on d2's topic gave %d jobs", len(jobs))
	}
	for _, bad := range []string{`{"v":1,"device":"d1","items":[]}`, `{"v":2,"device":"d1","items":[{"kind":"query","payload":{}}]}`, `garbage`} {
		if jobs := g.parse(fakeMsg{wsync.BundleTopic("d1"), []byte(bad)}, nil); len(jobs) != 0 {
			t.Errorf("%s gave %d jobs", bad, len(jobs))
		}
	}
}

// batchSale is a sale request that names its batch.
func batchSale(dev, key string, amount int64, at time.Time, batch string) wsync.PaymentRequest {
	s := sale(dev, key, amount, "KRW", at)
	s.Batch = batch
	return s
}

// reconcileSteps fill a ledger with entries in and out of batch B1 of d1, then close
// batches. Entries that name their batch are placed by it whatever their created_at;
// entries without one (older devices) by the window [t0-1h, t0+1h).
func reconcileSteps() []kindStep {
	refund := func(key, orig string, amount int64, batch string) wsync.RefundRequest {
		return wsync.RefundRequest{V: 1, Key: key, Device: "d1", OriginalKey: orig, AmountMinor: amount, Currency: "KRW", CreatedAt: t0, Batch: batch}
	}
	close := func(dev, key string, from, to time.Time, totals ...wsync.BatchTotal) wsync.BatchClose {
		return wsync.BatchClose{V: 1, Key: key, Device: dev, OpenedAt: from, ClosedAt: to, Totals: totals}
	}
	line := func(sales, salesMinor, refunds, refundsMinor int64) wsync.BatchTotal {
		return wsync.BatchTotal{Scheme: "alipay", Currency: "KRW", SalesCount: sales, SalesMinor: salesMinor, RefundsCount: refunds, RefundsMinor: refundsMinor}
	}
	return []kindStep{
		{"B1, created long before the window", "d1", wsync.KindPayment, batchSale("d1", "k1", 1000, t0.Add(-48*time.Hour), "B1"), "approved", ""},
		{"B2, created inside B1's window", "d1", wsync.KindPayment, batchSale("d1", "k2", 2000, t0, "B2"), "approved", ""},
		{"resend naming another batch keeps the first", "d1", wsync.KindPayment, batchSale("d1", "k2", 2000, t0, "B1"), "approved", ""},
		{"no batch, inside the window", "d1", wsync.KindPayment, sale("d1", "k3", 300, "KRW", t0), "approved", ""},
		{"no batch, outside the window", "d1", wsync.KindPayment, sale("d1", "k4", 4000, "KRW", t0.Add(48*time.Hour)), "approved", ""},
		{"no batch, at closed_at (excluded)", "d1", wsync.KindPayment, sale("d1", "k9", 4000, "KRW", t0.Add(time.Hour)), "approved", ""},
		{"another device's B1", "d2", wsync.KindPayment, batchSale("d2", "k5", 50, t0, "B1"), "approved", ""},
		{"B1, declined", "d1", wsync.KindPayment, batchSale("d1", "k6", 2_000_000, t0, "B1"), "declined", "limit"},
		{"B1, then reversed", "d1", wsync.KindPayment, batchSale("d1", "k7", 70, t0, "B1"), "approved", ""},
		{"reversal", "d1", wsync.KindReversal, wsync.ReversalRequest{V: 1, Key: "k7", Device: "d1"}, "reversed", ""},
		{"refund in B1 of a B2 sale", "d1", wsync.KindRefund, refund("r1", "k2", 100, "B1"), "approved", ""},
		{"refund in B3 of a B1 sale", "d1", wsync.KindRefund, refund("r2", "k1", 10, "B3"), "approved", ""},
		{"close B1", "d1", wsync.KindBatch, close("d1", "B1", t0.Add(-time.Hour), t0.Add(time.Hour), line(2, 1300, 1, 100)), "recorded", ""},
		{"close B2 outside its sale's created_at", "d1", wsync.KindBatch, close("d1", "B2", t0.Add(10*time.Hour), t0.Add(11*time.Hour), line(1, 2000, 0, 0)), "recorded", ""},
		{"close B3 with the device counting a sale the ledger has not", "d1", wsync.KindBatch, close("d1", "B3", t0.Add(47*time.Hour), t0.Add(49*time.Hour), line(1, 4000, 0, 0)), "declined", "device 1 sales 4000, 0 refunds 0; ledger 1 sales 4000, 1 refunds 10"},
	}
}

func runSteps(t *testing.T, g *Gateway, steps []kindStep) {
	t.Helper()
	for _, s := range steps {
		res, ok := send(t, g, s.device, s.kind, s.msg)
		if !ok {
			t.Errorf("%s: ignored", s.name)
			continue
		}
		if res.Status != s.status || !strings.Contains(res.Reason, s.reason) {
			t.Errorf("%s: got %s %q, want %s %q", s.name, res.Status, res.Reason, s.status, s.reason)
		}
	}
}

// TestReconcileByBatch: a batch close counts the entries that name the batch and,
// for entries without a batch, those created in its window.
func TestReconcileByBatch(t *testing.T) {
	g := newTestGateway(t)
	testReconcile(t, g)
	checkIndexes(t, g.cfg.Ledger.(*Ledger))
}

// testReconcile runs reconcileSteps on g (bbolt and PostgreSQL).
func testReconcile(t *testing.T, g *Gateway) {
	runSteps(t, g, reconcileSteps())
	err := g.cfg.Ledger.ForEach(func(e Entry) error {
		if e.Key == "k2" && (e.Batch != "B2" || e.Requests != 2) {
			t.Errorf("resent request changed the stored batch: %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkIndexes checks that every entry has exactly its one index key and no index key
// is left over.
func checkIndexes(t *testing.T, l *Ledger) {
	t.Helper()
	err := l.db.View(func(tx *bolt.Tx) error {
		want := map[string]bool{}
		if err := forEach(tx, func(e Entry) error {
			b, k := indexKey(e)
			want[string(b)+"|"+string(k)] = true
			return nil
		}); err != nil {
			return err
		}
		n := 0
		for _, name := range [][]byte{bucketByBatch, bucketByCreated} {
			b := tx.Bucket(name)
			if b == nil {
				t.Fatalf("index %s missing", name)
			}
			if err := b.ForEach(func(k, _ []byte) error {
				n++
				if !want[string(name)+"|"+string(k)] {
					t.Errorf("stale index key %q in %s", k, name)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if n != len(want) {
			t.Errorf("%d index keys for %d entries", n, len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIndexMovesWithEntry: an entry stored again with another created_at or batch
// leaves no stale index key behind.
func TestIndexMovesWithEntry(t *testing.T) {
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := Entry{Key: "k", Device: "d1", AmountMinor: 5, Currency: "KRW", Scheme: "alipay", Status: "approved", CreatedAt: t0}
	for _, change := range []func(){func() {}, func() { e.CreatedAt = t0.Add(time.Hour) }, func() { e.Batch = "B" }, func() { e.Batch = "C" }, func() { e.Batch = "" }} {
		change()
		if err := l.Update(func(tx *Tx) error { return tx.PutEntry(e) }); err != nil {
			t.Fatal(err)
		}
		checkIndexes(t, l)
	}
}

// TestIndexBuiltForOldLedger: a ledger written before the batch indexes existed gets
// them when it is opened writable, and reconciles right afterwards.
func TestIndexBuiltForOldLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posgw.db")
	l, err := OpenLedger(path, false)
	if err != nil {
		t.Fatal(err)
	}
	// These tests use fixed timestamps: the staleness rule has its own tests.
	g, err := New(Config{BrokerURL: "tcp://127.0.0.1:1", Ledger: l, Rules: Rules{MaxAge: -1}})
	if err != nil {
		t.Fatal(err)
	}
	steps := reconcileSteps()
	var fill, closes []kindStep
	for _, s := range steps {
		if s.kind == wsync.KindBatch {
			closes = append(closes, s)
		} else {
			fill = append(fill, s)
		}
	}
	runSteps(t, g, fill)
	// Make it an old ledger: no index buckets.
	err = l.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketByBatch, bucketByCreated} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	ro, err := OpenLedger(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketByBatch) != nil {
			t.Fatal("test ledger still has its index")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ro.Close()

	l, err = OpenLedger(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkIndexes(t, l)
	g, err = New(Config{BrokerURL: "tcp://127.0.0.1:1", Ledger: l})
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, g, closes)
}
