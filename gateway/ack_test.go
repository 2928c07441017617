package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/broker"
	wsync "github.com/walletless/walletless/sync"
)

// flakyApplier fails its first fails calls, then applies to the Local.
type flakyApplier struct {
	*Local
	fails atomic.Int32
	calls atomic.Int32
}

func (f *flakyApplier) Apply(ctx context.Context, msgs []Message) ([]Answer, error) {
	f.calls.Add(1)
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("ledger down (test)")
	}
	return f.Local.Apply(ctx, msgs)
}

// TestLedgerFailureReconnects: the ledger fails for the first batches; the gateway
// answers none of their requests, leaves them unacknowledged and reconnects (so that
// they do not fill the broker's in-flight window for it), and answers every request
// once the ledger works, each decided once.
func TestLedgerFailureReconnects(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fa := &flakyApplier{Local: NewLocal(l, Rules{MaxAge: -1}, nil)}
	fa.fails.Store(3)
	var logs logWatch
	defer func() {
		if t.Failed() {
			t.Log(logs.buf.String())
		}
	}()
	g, err := New(Config{BrokerURL: b.URL(), ClientID: "posgw-ack", Applier: fa, Log: slog.New(slog.NewTextHandler(&logs, nil)), BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "gateway subscribed", g.Ready)

	const n = 20
	var (
		mu  stdsync.Mutex
		got = map[string]bool{}
	)
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("posd-d1").SetCleanSession(false))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dev.Disconnect(0)
	tok := dev.Subscribe(wsync.ResultTopic("d1"), 1, func(_ mqtt.Client, m mqtt.Message) {
		rs, _ := wsync.DecodeResults(m.Payload())
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			got[r.Key] = true
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	publish := func(i int) {
		req := sale("d1", fmt.Sprintf("k%02d", i), 100, "KRW", t0)
		raw, _ := json.Marshal(req)
		if tok := dev.Publish(wsync.RequestTopic("d1"), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	for i := range n {
		publish(i)
	}
	// Like a link, the device resends what stays unanswered.
	waitUntil(t, "every request answered", func() bool {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		var missing []int
		for i := range n {
			if !got[fmt.Sprintf("k%02d", i)] {
				missing = append(missing, i)
			}
		}
		mu.Unlock()
		for _, i := range missing {
			publish(i)
		}
		return len(missing) == 0
	})
	if fa.calls.Load() <= 3 {
		t.Fatalf("the ledger was called %d times: it never failed", fa.calls.Load())
	}
	if s := g.Stats(); s.Unanswered == 0 || s.Connects < 2 || s.Decided != n {
		t.Errorf("stats %+v: want unanswered requests, a reconnect and %d decisions", s, n)
	}
}

// ackMsg is a request that records whether it was acknowledged, and whether its
// answer was stored (by the ledger) by then.
type ackMsg struct {
	fakeMsg
	acked  *atomic.Bool
	stored func() bool
	early  *atomic.Bool // acknowledged before its answer was stored
}

func (m ackMsg) Ack() {
	if !m.stored() {
		m.early.Store(true)
	}
	m.acked.Store(true)
}

// TestAckOnlyAfterStored: handleBatch acknowledges a request to the broker only after
// the ledger stored its answer; a batch the ledger failed is not acknowledged; a
// malformed message (nothing to store) is.
func TestAckOnlyAfterStored(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fa := &flakyApplier{Local: NewLocal(l, Rules{}, nil)}
	g, err := New(Config{BrokerURL: b.URL(), Applier: fa})
	if err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("posgw-direct"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	stored := func(key string) func() bool {
		return func() bool {
			found := false
			l.ForEach(func(e Entry) error { found = found || e.Key == key; return nil })
			return found
		}
	}
	msg := func(key string, raw []byte) (ackMsg, *atomic.Bool, *atomic.Bool) {
		if raw == nil {
			raw, _ = json.Marshal(sale("d1", key, 100, "KRW", t0))
		}
		topic, _ := wsync.UpTopic("d1", wsync.KindPayment)
		var acked, early atomic.Bool
		return ackMsg{fakeMsg{topic, raw}, &acked, stored(key), &early}, &acked, &early
	}

	fa.fails.Store(2) // the first batch, and the second as a whole (its messages are then tried one by one)
	m1, acked1, _ := msg("k1", nil)
	if g.handleBatch(context.Background(), c, []mqtt.Message{m1}) {
		t.Fatal("a failed batch reported stored")
	}
	if acked1.Load() {
		t.Fatal("a request the ledger did not store was acknowledged")
	}
	m2, acked2, early2 := msg("k2", nil)
	m3, acked3, early3 := msg("k3", nil)
	bad, ackedBad, _ := msg("bad", []byte("{not json"))
	if !g.handleBatch(context.Background(), c, []mqtt.Message{m2, m3, bad}) {
		t.Fatal("a stored batch reported failed")
	}
	if !acked2.Load() || !acked3.Load() || !ackedBad.Load() {
		t.Fatalf("acknowledged: k2 %v, k3 %v, malformed %v; want all", acked2.Load(), acked3.Load(), ackedBad.Load())
	}
	if early2.Load() || early3.Load() {
		t.Fatal("a request was acknowledged before its answer was stored")
	}
}
