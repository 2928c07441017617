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
