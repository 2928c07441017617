package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

type storeOutbox struct{ st *store.Store }

func (o storeOutbox) Pending(max int, skip func(uint64) bool) ([]wsync.Pending, error) {
	es, err := o.st.Peek(max, skip)
	out := make([]wsync.Pending, len(es))
	for i, e := range es {
		out[i] = wsync.Pending{Seq: e.Seq, Data: e.Data}
	}
	return out, err
}

// device is a link draining a real bbolt outbox; results ack entries by key.
type device struct {
	st      *store.Store
	link    *wsync.Link
	mu      stdsync.Mutex
	seqOf   map[string]uint64 // guarded by mu
	results map[string]string // guarded by mu
}

func newDevice(t *testing.T, brokerURL, id string) *device {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "posd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &device{st: st, seqOf: map[string]uint64{}, results: map[string]string{}}
	d.link, err = wsync.NewLink(wsync.Config{
		BrokerURL: brokerURL, DeviceID: id, Outbox: storeOutbox{st}, ResendAfter: 2 * time.Second,
		OnResult: func(_ context.Context, r wsync.PaymentResult) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if seq, ok := d.seqOf[r.Key]; ok {
				st.Ack(seq)
			}
			d.results[r.Key] = r.Status
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *device) enqueue(t *testing.T, dev string, i int, amount int64) string {
	t.Helper()
	key := fmt.Sprintf("0190b7a4-0000-7000-8000-%012d", i)
	payload, _ := json.Marshal(wsync.PaymentRequest{V: wsync.Version, Key: key, Device: dev, AmountMinor: amount, Currency: "KRW", Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
	msg, _ := json.Marshal(wsync.OutboxMessage{Kind: wsync.KindPayment, Key: key, Payload: payload})
	seq, err := d.st.PutSale(key, msg, func(uint64) ([]byte, error) { return []byte("{}"), nil })
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.seqOf[key] = seq
	d.mu.Unlock()
	d.link.Kick()
	return key
}

func (d *device) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.results)
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExactlyOnceAcrossBrokerRestart(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	ledger, err := gateway.OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	gw, _ := gateway.New(gateway.Config{BrokerURL: b.URL(), Ledger: ledger})
	ctx, cancel := context.WithCancel(context.Background())
	var wg stdsync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); gw.Run(ctx) }()

	d := newDevice(t, b.URL(), "dev-a")
	go func() { defer wg.Done(); d.link.Run(ctx) }()

	const n = 120
	for i := 0; i < n/2; i++ {
		d.enqueue(t, "dev-a", i, int64(1000+i))
	}
	waitFor(t, "first half answered", 30*time.Second, func() bool { return d.count() >= n/4 })

	// The broker goes away mid-stream and comes back on the same address.
	b.Close()
	for i := n / 2; i < n; i++ {
		d.enqueue(t, "dev-a", i, int64(1000+i)) // queued durably while offline
	}
	time.Sleep(500 * time.Millisecond)
	b, err = broker.Start(addr, nil)
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	defer b.Close()

	waitFor(t, "every sale answered", 60*time.Second, func() bool { return d.count() == n })
	waitFor(t, "outbox drained", 10*time.Second, func() bool { depth, _, _ := d.st.OutboxStats(); return depth == 0 })

	var entries int
	var total int64
	ledger.ForEach(func(e gateway.Entry) error {
		entries++
		total += e.AmountMinor
		return nil
	})
	var want int64
	for i := 0; i < n; i++ {
		want += int64(1000 + i)
	}
	if entries != n || total != want {
		t.Fatalf("ledger has %d entries totalling %d, want %d totalling %d", entries, total, n, want)
	}
}

func TestMalformedResultsAreIgnored(t *testing.T) {
	for _, c := range []struct {
		name    string
		payload string
	}{
		{"not json", "garbage"},
		{"wrong version", `{"v":2,"key":"k","status":"approved","decided_at":"2026-01-01T00:00:00Z"}`},
		{"unknown field", `{"v":1,"key":"k","status":"approved","extra":1}`},
		{"trailing data", `{"v":1,"key":"k","status":"approved"} {}`},
		{"bad status", `{"v":1,"key":"k","status":"maybe"}`},
	} {
		var r wsync.PaymentResult
		err := wsync.Decode([]byte(c.payload), &r)
		if err == nil {
			err = r.Validate()
		}
		if err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	big := make([]byte, wsync.MaxPayload+1)
	var r wsync.PaymentResult
	if err := wsync.Decode(big, &r); err == nil {
		t.Error("oversize payload accepted")
	}
}

func TestDeviceFromTopic(t *testing.T) {
	for topic, want := range map[string]string{
		"walletless/v1/devices/shop-7/payments/request": "shop-7",
		"walletless/v1/devices/+/payments/request":      "",
		"walletless/v1/devices//payments/request":       "",
		"other/v1/devices/shop-7/payments/request":      "",
	} {
		got, err := wsync.DeviceFromTopic(topic)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("DeviceFromTopic(%q) = %q, %v", topic, got, err)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"v":1,"key":"k","status":"approved","decided_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wsync.PaymentResult
		if err := wsync.Decode(b, &r); err == nil && r.V != wsync.Version {
			t.Fatalf("accepted version %d", r.V)
		}
		var q wsync.PaymentRequest
		if err := wsync.Decode(b, &q); err == nil {
			_ = q.Validate()
		}
	})
}

func TestDecodeResultsBatch(t *testing.T) {
	one := `{"v":1,"key":"a","status":"approved","decided_at":"2026-01-01T00:00:00Z"}`
	rs, errs := wsync.DecodeResults([]byte(one))
	if len(rs) != 1 || len(errs) != 0 || rs[0].Key != "a" {
		t.Fatalf("single: %+v %v", rs, errs)
	}
	// A bad element is reported alone; its neighbours still count.
	batch := `{"v":1,"results":[` + one + `,{"v":1,"key":"b","status":"maybe"},{"v":2,"key":"c","status":"approved"},{"v":1,"key":"d","kind":"refund","status":"declined","reason":"x"}]}`
	rs, errs = wsync.DecodeResults([]byte(batch))
	if len(rs) != 2 || rs[0].Key != "a" || rs[1].Key != "d" || len(errs) != 2 {
		t.Fatalf("batch: %+v %v", rs, errs)
	}
	for _, bad := range []string{
		`{"v":1,"results":[{"v":1,"key":"a","status":"approved","extra":1}]}`, // unknown field anywhere spoils the message
		`{"v":2,"results":[]}`,
		`{"v":1,"results":"no"}`,
		`{"v":1,"results":[]} trailing`,
	} {
		if rs, errs := wsync.DecodeResults([]byte(bad)); len(rs) != 0 || len(errs) == 0 {
			t.Errorf("%s: accepted %+v", bad, rs)
		}
	}
	var many []string
	for i := 0; i <= wsync.MaxBatchResults; i++ {
		many = append(many, fmt.Sprintf(`{"v":1,"key":"k%d","status":"approved"}`, i))
	}
	if rs, errs := wsync.DecodeResults([]byte(`{"v":1,"results":[` + strings.Join(many, ",") + `]}`)); len(rs) != 0 || len(errs) != 1 {
		t.Errorf("oversize batch: %d results, %v", len(rs), errs)
	}
}

func FuzzDecodeResults(f *testing.F) {
	f.Add([]byte(`{"v":1,"results":[{"v":1,"key":"a","status":"approved"}]}`))
	f.Add([]byte(`{"v":1,"key":"a","status":"declined","reason":"r"}`))
	f.Add([]byte(`{"results":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _ := wsync.DecodeResults(b)
		for _, r := range rs {
			if r.V != wsync.Version || r.Validate() != nil {
				t.Fatalf("accepted an invalid result %+v", r)
			}
		}
	})
}
