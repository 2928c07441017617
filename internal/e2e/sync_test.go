package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// checkLedger asserts that the ledger holds exactly the device's sales keys
// [0, n), once each, approved, with amount(i), and that its totals for the device equal
// the device's to the minor unit.
func checkLedger(t *testing.T, gw *testGateway, dev string, n int, amount func(int) int64) {
	t.Helper()
	entries := gw.entries(t)
	var want int64
	for i := 0; i < n; i++ {
		key := saleKey(dev, i)
		e, ok := entries[key]
		switch {
		case !ok:
			t.Errorf("sale %d missing from the ledger", i)
		case e.Status != wsync.ResultApproved || e.AmountMinor != amount(i) || e.Device != dev:
			t.Errorf("sale %d: %+v", i, e)
		}
		want += amount(i)
		delete(entries, key)
	}
	for k := range entries {
		t.Errorf("unexpected ledger entry %s", k)
	}
	totals, err := gw.ledger.Totals()
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, tt := range totals {
		if tt.Device == dev {
			got += tt.SalesMinor
		}
	}
	if got != want {
		t.Errorf("ledger total for %s is %d, the device's is %d", dev, got, want)
	}
	// Each key was decided exactly once, however often the device sent it: a resend
	// answered by a fresh decision would count again.
	var decided uint64
	for _, g := range gw.gws {
		decided += g.Stats().Decided
	}
	if decided != uint64(n) {
		t.Errorf("posgw made %d decisions for %d sales: a resend was decided again", decided, n)
	}
}

// resendAnsweredFromLedger sends the device's first k sales again (a restored backup,
// a lost acknowledgement) and checks that posgw answers each with the decision it
// stored, not a new one: the same decided_at, the ledger entry unchanged but for its
// request count.
func resendAnsweredFromLedger(t *testing.T, d *testDevice, gw *testGateway, k int) {
	t.Helper()
	before := gw.entries(t)
	for i := 0; i < k; i++ {
		d.sale(t, i, amountOf(i))
	}
	waitFor(t, "resends drained", 30*time.Second, func() bool { return d.depth() == 0 })
	after := gw.entries(t)
	for i := 0; i < k; i++ {
		key := saleKey(d.id, i)
		b, a := before[key], after[key]
		if !a.DecidedAt.Equal(b.DecidedAt) || a.Status != b.Status || a.Requests != b.Requests+1 {
			t.Errorf("resent sale %d decided again: before %+v, after %+v", i, b, a)
		}
		if r, ok := d.result(key); !ok || !r.DecidedAt.Equal(b.DecidedAt) {
			t.Errorf("resent sale %d answered with %+v, the ledger decided it at %v", i, r, b.DecidedAt)
		}
	}
}

func amountOf(i int) int64 { return int64(1000 + i*7) }

// TestBrokerGoesAwayDuringStream: sales keep coming while the broker is stopped or
// killed and started again, with and without persistence. Every sale is in the ledger
// exactly once, its result reached the device, and the outbox is empty.
func TestBrokerGoesAwayDuringStream(t *testing.T) {
	for _, c := range []struct {
		name    string
		persist bool
		kill    bool
	}{
		{"persistence, clean stop", true, false},
		{"no persistence, clean stop", false, false},
		{"persistence, SIGKILL", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 240
			m := newMosquitto(t, mosqOpts{persistence: c.persist, users: []string{"dev-r"}})
			gw := startGateways(t, m.URL(), 1)
			d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
				BrokerURL: m.URL(), DeviceID: "dev-r", Username: "dev-r", Password: password,
			})
			stop := d.run()
			defer stop()
			waitFor(t, "device online", 20*time.Second, d.link.Online)
			for i := 0; i < n; i++ {
				switch i {
				case n / 3:
					waitFor(t, "some answers", 30*time.Second, func() bool { return d.answered() >= n/6 })
					if c.kill {
						m.kill()
					} else {
						m.stop()
					}
				case 2 * n / 3:
					waitFor(t, "device sees the outage", 30*time.Second, func() bool { return !d.link.Online() })
					m.start()
				}
				d.sale(t, i, amountOf(i))
			}
			waitFor(t, "every sale answered", 60*time.Second, func() bool { return d.answered() == n })
			waitFor(t, "outbox drained", 20*time.Second, func() bool { return d.depth() == 0 })
			resendAnsweredFromLedger(t, d, gw, 5)
			stop()
			gw.stop()
			checkLedger(t, gw, "dev-r", n, amountOf)
			if s := d.link.Stats(); s.Connects < 2 {
				t.Errorf("link stats %+v: expected a reconnect", s)
			}
			// The sales taken during the outage left in bundles through mosquitto
			// and the deploy ACL, and posgw answered every item.
			if s := d.link.Stats(); s.Publishes >= s.Published {
				t.Errorf("link stats %+v: the backlog after the outage was not bundled", s)
			}
		})
	}
}

// TestProxyCutsAndStalls runs the device through a TCP proxy that cuts every
// connection twice and stalls it once (bytes held in both directions until the
// device's keep-alive gives up).
func TestProxyCutsAndStalls(t *testing.T) {
	const n = 200
	m := newMosquitto(t, mosqOpts{persistence: true, users: []string{"dev-p"}})
	gw := startGateways(t, m.URL(), 1)
	p := newProxy(t, m.Addr())
	d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
		BrokerURL: p.URL(), DeviceID: "dev-p", Username: "dev-p", Password: password,
		KeepAlive: time.Second, Timeout: 2 * time.Second, ResendAfter: time.Second,
	})
	stop := d.run()
	defer stop()
	waitFor(t, "device online", 20*time.Second, d.link.Online)
	for i := 0; i < n; i++ {
		switch i {
		case n / 4, 3 * n / 4:
			waitFor(t, "device online before the cut", 30*time.Second, d.link.Online)
			p.cut()
		case n / 2:
			waitFor(t, "device online before the stall", 30*time.Second, d.link.Online)
			p.stall(true)
			waitFor(t, "keep-alive notices the stall", 30*time.Second, func() bool { return !d.link.Online() })
			p.stall(false)
		}
		d.sale(t, i, amountOf(i))
	}
	waitFor(t, "every sale answered", 60*time.Second, func() bool { return d.answered() == n })
	waitFor(t, "outbox drained", 20*time.Second, func() bool { return d.depth() == 0 })
	resendAnsweredFromLedger(t, d, gw, 5)
	stop()
	gw.stop()
	checkLedger(t, gw, "dev-p", n, amountOf)
	if p.accepted.Load() < 4 {
		t.Errorf("proxy saw %d connections; the cuts and the stall should force 4 or more", p.accepted.Load())
	}
}

// TestResultsDuplicatedReorderedUnknownMalformed plays the cloud by hand: results
// arrive twice and in reverse order, one is for a key the device never sent, and
// malformed or oversize payloads land on the device's result topic. Each bad payload
// costs one log line; every entry is marked synced once; the link keeps working.
func TestResultsDuplicatedReorderedUnknownMalformed(t *testing.T) {
	const n = 20
	m := newMosquitto(t, mosqOpts{persistence: false, users: []string{"dev-x"}})
	cloud := mustConnect(t, m.URL(), "posgw", "fake-cloud")
	cloud.sub(t, wsync.RequestTopic("dev-x"))
	d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
		BrokerURL: m.URL(), DeviceID: "dev-x", Username: "dev-x", Password: password, ResendAfter: time.Minute,
		Bundle: 1, // this cloud reads single requests only
	})
	stop := d.run()
	defer stop()
	var keys []string
	for i := 0; i < n; i++ {
		keys = append(keys, d.sale(t, i, amountOf(i)))
	}
	waitFor(t, "all requests at the cloud", 30*time.Second, func() bool {
		cloud.mu.Lock()
		defer cloud.mu.Unlock()
		return len(cloud.in) >= n
	})
	res := func(key, status string) string {
		b, _ := json.Marshal(wsync.PaymentResult{V: 1, Key: key, Kind: wsync.KindPayment, Status: status, DecidedAt: time.Now().UTC()})
		return string(b)
	}
	topic := wsync.ResultTopic("dev-x")
	malformed := []string{
		"garbage",
		`{"v":2,"key":"k","status":"approved","decided_at":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"key":"k","status":"approved","surprise":true}`,
		`{"v":1,"key":"k","status":"approved"} trailing`,
		`{"v":1,"key":"` + strings.Repeat("x", 100<<10) + `","status":"approved"}`, // 100 KiB: the broker passes it, the device refuses it
	}
	for _, p := range malformed {
		cloud.pub(t, topic, false, p)
	}
	cloud.pub(t, topic, false, `{"v":1,"key":"k","status":"maybe"}`) // valid JSON, invalid status
	for i := n - 1; i >= 0; i-- {
		cloud.pub(t, topic, false, res(keys[i], wsync.ResultApproved))
		cloud.pub(t, topic, false, res(keys[i], wsync.ResultApproved))
	}
	cloud.pub(t, topic, false, res("ghost-key", wsync.ResultApproved))
	waitFor(t, "every result applied", 30*time.Second, func() bool { return d.answered() == n+1 })
	waitFor(t, "outbox drained", 20*time.Second, func() bool { return d.depth() == 0 })
	waitFor(t, "bad payloads logged", 20*time.Second, func() bool { return d.link.Stats().Ignored == uint64(len(malformed)+1) })

	if got := d.logs.count("ignoring malformed result"); got != len(malformed) {
		t.Errorf("%d log lines for %d malformed results:\n%s", got, len(malformed), d.logs)
	}
	if got := d.logs.count("ignoring invalid result"); got != 1 {
		t.Errorf("%d log lines for the invalid result", got)
	}
	waitFor(t, "duplicates applied", 20*time.Second, func() bool { return d.link.Stats().Results == 2*n+1 })
	waitFor(t, "acks counted", 20*time.Second, func() bool { return d.link.Stats().Acked >= n })
	s := d.link.Stats()
	if s.Acked != n {
		t.Errorf("link stats %+v: want %d entries marked synced once each", s, n)
	}
	// Still working: one more sale, answered.
	k := d.sale(t, n, 5)
	cloud.waitPayload(t, func() string { // the exact request bytes are the device's; match by key
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			cloud.mu.Lock()
			for _, m := range cloud.in {
				if strings.Contains(string(m.Payload()), k) {
					p := string(m.Payload())
					cloud.mu.Unlock()
					return p
				}
			}
			cloud.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the sale after the garbage never reached the cloud")
		return ""
	}())
	cloud.pub(t, topic, false, res(k, wsync.ResultDeclined))
	waitFor(t, "the last sale answered", 20*time.Second, func() bool { r, ok := d.result(k); return ok && r.Status == wsync.ResultDeclined })
}

// TestMalformedRequestsIgnoredByGateway: garbage on a device's request topics costs
// posgw one log line each and changes nothing; the next valid sale is answered.
func TestMalformedRequestsIgnoredByGateway(t *testing.T) {
	m := newMosquitto(t, mosqOpts{persistence: false, users: []string{"dev-m"}})
	gw := startGateways(t, m.URL(), 1)
	dev := mustConnect(t, m.URL(), "dev-m", "posd-dev-m")
	dev.sub(t, wsync.ResultTopic("dev-m"))
	bad := []struct{ kind, payload string }{
		{wsync.KindPayment, "garbage"},
		{wsync.KindPayment, `{"v":1,"key":"k","device":"dev-other","amount_minor":1,"currency":"KRW","kind":"wallet","scheme":"alipay","code":"x","masked_code":"x","created_at":"2026-01-01T00:00:00Z"}`},
		{wsync.KindQuery, `{"v":1}`},
		{wsync.KindRefund, `{"v":1,"key":"r","device":"dev-m","original_key":"r","amount_minor":1,"currency":"KRW"}`},
		{wsync.KindBatch, `[1,2,3]`},
		{wsync.KindAttempt, strings.Repeat("{", 100<<10)},
	}
	for _, b := range bad {
		topic, _ := wsync.UpTopic("dev-m", b.kind)
		dev.pub(t, topic, false, b.payload)
	}
	good, _ := json.Marshal(wsync.PaymentRequest{V: 1, Key: "good-1", Device: "dev-m", AmountMinor: 500, Currency: "KRW", Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
	dev.pub(t, wsync.RequestTopic("dev-m"), false, string(good))
	waitFor(t, "the valid sale answered", 20*time.Second, func() bool {
		dev.mu.Lock()
		defer dev.mu.Unlock()
		return len(dev.in) == 1
	})
	deadline := time.Now().Add(20 * time.Second)
	for gw.gws[0].Stats().Ignored < uint64(len(bad)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := gw.gws[0].Stats().Ignored; n != uint64(len(bad)) {
		t.Fatalf("posgw ignored %d messages, want %d:\n%s", n, len(bad), gw.logs)
	}
	lines := gw.logs.count("ignoring malformed message") + gw.logs.count("ignoring message whose device differs")
	if lines != len(bad) {
		t.Errorf("%d log lines for %d bad payloads:\n%s", lines, len(bad), gw.logs)
	}
	if n := len(gw.entries(t)); n != 1 {
		t.Errorf("ledger has %d entries, want 1", n)
	}
	if strings.Contains(gw.logs.String(), "281234567890123456") {
		t.Error("posgw logged a full payment code")
	}
}

// TestTwoGatewaysShareSubscription: two gateways split a shared subscription and
// share one ledger; two links with the same device id replay the same sales (a
// restored backup, say), so every key reaches the gateways at least twice, often both
// at once. No sale is decided twice.
func TestTwoGatewaysShareSubscription(t *testing.T) {
	const n = 200
	m := newMosquitto(t, mosqOpts{persistence: false, users: []string{"dev-g"}})
	gw := startGateways(t, m.URL(), 2)
	var devs []*testDevice
	for i := 0; i < 2; i++ {
		d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
			BrokerURL: m.URL(), DeviceID: "dev-g", ClientID: fmt.Sprintf("posd-dev-g-%d", i), Username: "dev-g", Password: password,
			ResendAfter: 300 * time.Millisecond,
		})
		for s := 0; s < n; s++ {
			d.put(t, wsync.KindPayment, saleKey("dev-g", s), wsync.PaymentRequest{V: 1, Key: saleKey("dev-g", s), Device: "dev-g",
				AmountMinor: amountOf(s), Currency: "KRW", Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
		}
		devs = append(devs, d)
	}
	for _, d := range devs {
		stop := d.run()
		defer stop()
	}
	for _, d := range devs {
		waitFor(t, "outbox drained", 60*time.Second, func() bool { return d.depth() == 0 })
	}
	for _, d := range devs {
		d.link.Kick()
	}
	gw.stop()
	checkLedger(t, gw, "dev-g", n, amountOf)
	var decided, replayed uint64
	for i, g := range gw.gws {
		s := g.Stats()
		t.Logf("gateway %d: %+v", i, s)
		if s.Decided+s.Replayed == 0 {
			t.Errorf("gateway %d handled nothing: the subscription is not shared", i)
		}
		decided += s.Decided
		replayed += s.Replayed
	}
	if decided != n || replayed < n {
		t.Errorf("decided %d (want %d), replayed %d (want ≥ %d)", decided, n, replayed, n)
	}
	if got := gw.logs.count("payment decided"); got != n {
		t.Errorf("%d 'payment decided' lines, want %d", got, n)
	}
}

// TestDeviceKilledWhileDraining kills a device process (this test binary re-run as a
// child: a link over a real bbolt outbox that records each result in the same file)
// with SIGKILL at random points while it drains, adds sales while it is down, and
// restarts it until the outbox is empty. The ledger then holds each sale exactly once
// and the device's approved total equals the ledger's to the minor unit.
func TestDeviceKilledWhileDraining(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const (
		first  = 300
		rounds = 12
		extra  = 25
	)
	m := newMosquitto(t, mosqOpts{persistence: true, users: []string{"dev-k"}})
	gw := startGateways(t, m.URL(), 1)
	db := filepath.Join(t.TempDir(), "posd.db")
	n := 0
	addSales := func(k int) {
		st, err := store.Open(db, store.Options{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		d := &testDevice{id: "dev-k", st: st}
		for i := 0; i < k; i++ {
			d.sale(t, n, amountOf(n))
			n++
		}
	}
	addSales(first)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "WALLETLESS_CHILD_DB="+db, "WALLETLESS_CHILD_BROKER="+m.URL(), "WALLETLESS_CHILD_DEVICE=dev-k", "WALLETLESS_CHILD_PASSWORD="+password)
		out := &lockedWriter{w: new(bytes.Buffer)}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	depth := func() int {
		st, err := store.Open(db, store.Options{Timeout: 10 * time.Second, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		n, _, _ := st.OutboxStats()
		return n
	}
	// Each round aims its kill at one state, and each kill is classified by what the
	// outbox shows afterwards: nothing drained yet (killed while connecting or before
	// the first results were recorded), part drained (mid-drain: results recorded and
	// more in flight), or all drained. Every state must be hit at least once.
	decided := func() uint64 { return gw.gws[0].Stats().Decided }
	kills := map[string]int{}
	for r := 0; r < rounds; r++ {
		before := depth()
		cmd := child()
		switch r % 3 {
		case 0: // right after the start, before the link is up
			time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
		case 1: // mid-drain: as soon as posgw decided one of the backlog
			d0 := decided()
			for i := 0; i < 20000 && decided() == d0; i++ {
				time.Sleep(100 * time.Microsecond)
			}
		default: // anywhere
			time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		after := depth()
		switch {
		case after == before:
			kills["before any result"]++
		case after > 0:
			kills["mid-drain"]++
		default:
			kills["after the drain"]++
		}
		if r%3 == 0 { // a backlog for the next, mid-drain round
			addSales(extra + rng.IntN(200))
		}
	}
	t.Logf("kills by state: %v", kills)
	for _, st := range []string{"before any result", "mid-drain"} {
		if kills[st] == 0 {
			t.Errorf("no kill landed %s (kills by state: %v)", st, kills)
		}
	}
	// The last run drains everything and exits by itself.
	cmd := child()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("final child: %v\n%s", err, cmd.Stdout.(*lockedWriter).String())
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("final child never drained the outbox:\n%s", tail(cmd.Stdout.(*lockedWriter).String(), 4096))
	}
	gw.stop()

	// The device's view: every sale resolved as approved, total to the minor unit.
	st, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var devTotal int64
	var resolved int
	for i := 0; i < n; i++ {
		raw, err := st.GetSale(wsync.KindPayment + ":" + saleKey("dev-k", i))
		if err != nil {
			t.Fatalf("sale %d: %v", i, err)
		}
		var doc struct{ Status string }
		json.Unmarshal(raw, &doc)
		if doc.Status != wsync.ResultApproved {
			t.Errorf("sale %d on the device: %s", i, raw)
			continue
		}
		resolved++
		devTotal += amountOf(i)
	}
	if depth, _, _ := st.OutboxStats(); depth != 0 {
		t.Errorf("outbox depth %d after the final drain", depth)
	}
	checkLedger(t, gw, "dev-k", n, amountOf)
	totals, _ := gw.ledger.Totals()
	for _, tt := range totals {
		if tt.Device == "dev-k" && tt.SalesMinor != devTotal {
			t.Errorf("ledger total %d, device total %d", tt.SalesMinor, devTotal)
		}
	}
	var resends int
	for _, e := range gw.entries(t) {
		resends += e.Requests - 1
	}
	t.Logf("%d sales over %d killed runs; %d resends answered from the ledger", n, rounds, resends)
}

// TestCrashChild is the device process of TestDeviceKilledWhileDraining.
func TestCrashChild(t *testing.T) {
	db := os.Getenv("WALLETLESS_CHILD_DB")
	if db == "" {
		t.Skip("run by TestDeviceKilledWhileDraining")
	}
	st, err := store.Open(db, store.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link, err := wsync.NewLink(wsync.Config{
		BrokerURL: os.Getenv("WALLETLESS_CHILD_BROKER"), DeviceID: os.Getenv("WALLETLESS_CHILD_DEVICE"),
		Username: os.Getenv("WALLETLESS_CHILD_DEVICE"), Password: os.Getenv("WALLETLESS_CHILD_PASSWORD"),
		Outbox: storeOutbox{st}, ResendAfter: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second,
		Window: 64,
		// Results are recorded in the sale documents, then the link marks the entries
		// synced: a kill between the two leaves the entry to be resent and answered
		// from the ledger again.
		OnResults: func(_ context.Context, rs []wsync.PaymentResult) error {
			return st.Update(func(tx *store.Tx) error {
				for _, r := range rs {
					doc, _ := json.Marshal(map[string]string{"status": r.Status})
					if err := tx.PutSale(wsync.KindPayment+":"+r.Key, doc); err != nil {
						return err
					}
				}
				return nil
			})
		},
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); link.Run(ctx) }()
	for {
		if n, _, _ := st.OutboxStats(); n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}
