package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/wirecheck"
	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// storeOutbox adapts a real bbolt store to the link's Outbox, Acker and Depther.
type storeOutbox struct{ st *store.Store }

func (o storeOutbox) Pending(max int, skip func(uint64) bool) ([]wsync.Pending, error) {
	es, err := o.st.Peek(max, skip)
	out := make([]wsync.Pending, len(es))
	for i, e := range es {
		out[i] = wsync.Pending{Seq: e.Seq, Data: e.Data}
	}
	return out, err
}

func (o storeOutbox) Ack(seqs ...uint64) error { return o.st.Ack(seqs...) }

func (o storeOutbox) Depth() (int, error) {
	n, _, err := o.st.OutboxStats()
	return n, err
}

// testDevice is a link draining a real bbolt outbox; the link marks entries synced
// itself (Acker) once their results were recorded.
type testDevice struct {
	id   string
	st   *store.Store
	link *wsync.Link
	logs *logBuffer

	mu      sync.Mutex
	results map[string]wsync.PaymentResult // guarded by mu: key → last result
	seen    map[string]int                 // guarded by mu: key → results received
}

// newTestDevice opens (or reopens) the bbolt file at path; cfg needs BrokerURL and
// the credentials, the rest has test defaults.
func newTestDevice(t testing.TB, path string, cfg wsync.Config) *testDevice {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &testDevice{id: cfg.DeviceID, st: st, logs: new(logBuffer), results: map[string]wsync.PaymentResult{}, seen: map[string]int{}}
	if cfg.Outbox == nil {
		cfg.Outbox = storeOutbox{st}
	}
	if cfg.ResendAfter == 0 {
		cfg.ResendAfter = 2 * time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Log = slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.OnResults = d.linkOnResults()
	d.link, err = wsync.NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// linkOnResults records results in memory.
func (d *testDevice) linkOnResults() func(context.Context, []wsync.PaymentResult) error {
	return func(_ context.Context, rs []wsync.PaymentResult) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, r := range rs {
			d.results[r.Key] = r
			d.seen[r.Key]++
		}
		return nil
	}
}

// run starts the link; the returned function stops it and waits.
func (d *testDevice) run() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.link.Run(ctx) }()
	return func() { cancel(); <-done }
}

func saleKey(dev string, i int) string { return fmt.Sprintf("%s-0000-7000-8000-%012d", dev, i) }

// sale stores one payment request in the outbox and kicks the link.
func (d *testDevice) sale(t testing.TB, i int, amount int64) string {
	t.Helper()
	key := saleKey(d.id, i)
	req := wsync.PaymentRequest{V: wsync.Version, Key: key, Device: d.id, AmountMinor: amount, Currency: "KRW",
		Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()}
	d.put(t, wsync.KindPayment, key, req)
	return key
}

func (d *testDevice) put(t testing.TB, kind, key string, payload any) {
	t.Helper()
	p, _ := json.Marshal(payload)
	msg, _ := json.Marshal(wsync.OutboxMessage{Kind: kind, Key: key, Payload: p})
	if _, err := d.st.PutSale(kind+":"+key, msg, func(uint64) ([]byte, error) { return []byte("{}"), nil }); err != nil {
		t.Fatal(err)
	}
	if d.link != nil {
		d.link.Kick()
	}
}

func (d *testDevice) answered() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.results)
}

func (d *testDevice) result(key string) (wsync.PaymentResult, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.results[key]
	return r, ok
}

func (d *testDevice) depth() int {
	n, _, _ := d.st.OutboxStats()
	return n
}

// logBuffer collects a component's log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		b.lines = append(b.lines, l)
	}
	return len(p), nil
}

// count reports how many lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// testGateway is an in-process posgw with its own ledger.
type testGateway struct {
	ledger *gateway.Ledger
	gws    []*gateway.Gateway
	logs   *logBuffer
	stop   func()
}

// startGateways runs n gateways sharing one ledger and one shared subscription.
func startGateways(t testing.TB, brokerURL string, n int) *testGateway {
	t.Helper()
	ledger, err := gateway.OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	tg := &testGateway{ledger: ledger, logs: new(logBuffer)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		gw, err := gateway.New(gateway.Config{BrokerURL: brokerURL, Username: "posgw", Password: password,
			ClientID: fmt.Sprintf("posgw-test-%d", i), Ledger: ledger,
			Log: slog.New(slog.NewTextHandler(tg.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		tg.gws = append(tg.gws, gw)
		wg.Add(1)
		go func() { defer wg.Done(); gw.Run(ctx) }()
	}
	for _, gw := range tg.gws {
		waitFor(t, "posgw subscribed", 30*time.Second, gw.Ready)
	}
	var once sync.Once
	tg.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(func() { tg.stop(); ledger.Close() })
	return tg
}

// entries returns the ledger's records by key.
func (g *testGateway) entries(t testing.TB) map[string]gateway.Entry {
	t.Helper()
	out := map[string]gateway.Entry{}
	if err := g.ledger.ForEach(func(e gateway.Entry) error { out[e.Key] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// client connects a plain paho client and records what it receives.
type client struct {
	c  mqtt.Client
	mu sync.Mutex
	in []mqtt.Message // guarded by mu
}

func connect(t testing.TB, url, user, id string, tc *tls.Config) (*client, error) {
	t.Helper()
	cl := &client{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			cl.mu.Lock()
			cl.in = append(cl.in, m)
			cl.mu.Unlock()
		})
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	cl.c = mqtt.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { cl.c.Disconnect(0) })
	return cl, nil
}

func mustConnect(t testing.TB, url, user, id string) *client {
	t.Helper()
	cl, err := connect(t, url, user, id, nil)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", url, user, err)
	}
	return cl
}

// sub subscribes and returns the granted QoS per filter (0x80: refused).
func (c *client) sub(t testing.TB, filters ...string) map[string]byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := c.c.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return tok.(*mqtt.SubscribeToken).Result()
}

func (c *client) pub(t testing.TB, topic string, retained bool, payload string) {
	t.Helper()
	wirecheck.Exempt([]byte(payload)) // a test's hand-made message, maybe broken on purpose
	tok := c.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// waitPayload waits until a message with payload arrived and returns everything
// received before it.
func (c *client) waitPayload(t testing.TB, payload string) []mqtt.Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for i, m := range c.in {
			if string(m.Payload()) == payload {
				out := append([]mqtt.Message(nil), c.in[:i]...)
				c.in = c.in[i+1:]
				c.mu.Unlock()
				return out
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("message %q never arrived", payload)
	return nil
}

// waitFor polls cond until it holds; limit is a failure guard, not a measurement.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
