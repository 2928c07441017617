package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/pgtest"
	wsync "github.com/walletless/walletless/sync"
)

// posgwProc is a posgw process that can be killed and started again with the same
// arguments; its output accumulates over restarts.
type posgwProc struct {
	t      *testing.T
	bin    string
	args   []string
	out    *lockedWriter
	cmd    *exec.Cmd
	exited chan struct{}
}

func startPosgw(t *testing.T, bin string, args ...string) *posgwProc {
	t.Helper()
	p := &posgwProc{t: t, bin: bin, args: args, out: &lockedWriter{w: new(bytes.Buffer)}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- posgw %s output (last 6 KiB):\n%s", strings.Join(args, " "), tail(p.out.String(), 6<<10))
		}
	})
	return p
}

func (p *posgwProc) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), "POSGW_MQTT_PASSWORD="+password)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited
}

// kill ends the process at once (SIGKILL).
func (p *posgwProc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// term stops the process cleanly and reports an unclean exit.
func (p *posgwProc) term() {
	p.t.Helper()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			p.t.Errorf("posgw exited with %v", p.cmd.ProcessState)
		}
	case <-time.After(20 * time.Second):
		p.t.Error("posgw did not stop within 20s")
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

func (p *posgwProc) count(s string) int { return strings.Count(p.out.String(), s) }

// dupSender plays a device by hand: it publishes each sale several times in a row
// (so the copies land on different members of the shared subscription) and keeps
// every result it receives.
type dupSender struct {
	id string
	c  mqtt.Client

	mu      sync.Mutex
	results map[string][]wsync.PaymentResult // guarded by mu
}

func newDupSender(t *testing.T, url, id string) *dupSender {
	t.Helper()
	d := &dupSender{id: id, results: map[string][]wsync.PaymentResult{}}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("posd-" + id).SetUsername(id).SetPassword(password).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectTimeout(5 * time.Second)
	d.c = mqtt.NewClient(opts)
	if tok := d.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	// The persistent session keeps the subscription if the connection drops.
	tok := d.c.Subscribe(wsync.ResultTopic(id), 1, func(_ mqtt.Client, m mqtt.Message) {
		rs, errs := wsync.DecodeResults(m.Payload())
		d.mu.Lock()
		defer d.mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("%s: bad result message: %v", id, errs)
		}
		for _, r := range rs {
			d.results[r.Key] = append(d.results[r.Key], r)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", id, tok.Error())
	}
	return d
}

func (d *dupSender) publish(t *testing.T, key string, amount int64, copies int) {
	t.Helper()
	raw, _ := json.Marshal(wsync.PaymentRequest{V: 1, Key: key, Device: d.id, AmountMinor: amount, Currency: "KRW",
		Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
	for i := 0; i < copies; i++ {
		tok := d.c.Publish(wsync.RequestTopic(d.id), 1, false, raw)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", key, tok.Error())
		}
	}
}

func (d *dupSender) answered(keys []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		if len(d.results[k]) == 0 {
			return false
		}
	}
	return true
}

// TestPGFleet is issue 16's test: three posgw processes on one PostgreSQL ledger and
// one mosquitto, in one shared subscription. Devices with real outboxes stream sales
// naming their batch (the links resend what stays unanswered) and a hand-driven device
// publishes every sale three times in a row, so copies of a key reach different
// workers. Mid-stream one worker is SIGKILLed and started again; later PostgreSQL is
// stopped for a while and started again. Then every key is in the ledger once and was
// decided once (every result a device received carries the ledger's decision time),
// every device got every result, per-device totals equal the devices' own to the
// minor unit, and each device's batch close reconciles.
func TestPGFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const (
		workers = 3
		devices = 3
		n       = 90 // sales per device and phase
		dups    = 30 // hand-published keys per phase
		copies  = 3
		phases  = 3
	)
	pg := pgtest.Start(t)
	url := pg.NewDB()
	users := []string{"dev-h"}
	for i := 1; i <= devices; i++ {
		users = append(users, fmt.Sprintf("dev-p%d", i))
	}
	m := newMosquitto(t, mosqOpts{persistence: true, users: users})
	dir := t.TempDir()
	bins := build(t, dir, "posgw")
	if out, err := exec.Command(bins["posgw"], "migrate", "-ledger", url).CombinedOutput(); err != nil {
		t.Fatalf("posgw migrate: %v\n%s", err, out)
	}
	var procs []*posgwProc
	for i := 1; i <= workers; i++ {
		procs = append(procs, startPosgw(t, bins["posgw"], "-broker", m.URL(), "-username", "posgw", "-ledger", url,
			"-client-id", fmt.Sprintf("posgw-w%d", i), "-log-level", "debug"))
	}
	for _, p := range procs {
		waitFor(t, "posgw subscribed", 30*time.Second, func() bool { return p.count("gateway subscribed") >= 1 })
	}

	var devs []*testDevice
	for i := 1; i <= devices; i++ {
		id := fmt.Sprintf("dev-p%d", i)
		d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
			BrokerURL: m.URL(), DeviceID: id, Username: id, Password: password, ResendAfter: time.Second,
		})
		devs = append(devs, d)
		stop := d.run()
		defer stop()
	}
	hand := newDupSender(t, m.URL(), "dev-h")
	amount := func(dev string, i int) int64 { return int64(1000 + i*7 + len(dev)) }
	handKey := func(i int) string { return saleKey("dev-h", i) }
	opened := time.Now().UTC().Add(-time.Minute)
	sale := func(d *testDevice, i int) {
		key := saleKey(d.id, i)
		d.put(t, wsync.KindPayment, key, wsync.PaymentRequest{V: wsync.Version, Key: key, Device: d.id, AmountMinor: amount(d.id, i),
			Currency: "KRW", Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456",
			CreatedAt: time.Now().UTC(), Batch: "batch-" + d.id})
	}
	// The hand-driven device resends what stays unanswered, like a link.
	handPhase := func(from, to int) (wait func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := from; i < to; i++ {
				hand.publish(t, handKey(i), amount("dev-h", i), copies)
			}
			deadline := time.Now().Add(3 * time.Minute)
			for time.Now().Before(deadline) {
				time.Sleep(time.Second)
				all := true
				for i := from; i < to; i++ {
					if !hand.answered([]string{handKey(i)}) {
						all = false
						hand.publish(t, handKey(i), amount("dev-h", i), 1)
					}
				}
				if all {
					return
				}
			}
		}()
		return func() { <-done }
	}

	for phase := 0; phase < phases; phase++ {
		wait := handPhase(phase*dups, (phase+1)*dups)
		for i := phase * n; i < (phase+1)*n; i++ {
			switch {
			case phase == 1 && i == n+n/3:
				waitFor(t, "some phase 2 answers", 60*time.Second, func() bool { return devs[0].answered() > n+n/6 })
				procs[0].kill()
			case phase == 1 && i == n+2*n/3:
				procs[0].start()
			case phase == 2 && i == 2*n+n/3:
				waitFor(t, "some phase 3 answers", 60*time.Second, func() bool { return devs[0].answered() > 2*n+n/6 })
				pg.Stop()
			case phase == 2 && i == 2*n+2*n/3:
				waitFor(t, "a worker finds the database gone", 60*time.Second, func() bool {
					for _, p := range procs {
						if p.count("ledger database unavailable") > 0 {
							return true
						}
					}
					return false
				})
				pg.StartAgain()
			}
			for _, d := range devs {
				sale(d, i)
			}
		}
		for _, d := range devs {
			waitFor(t, fmt.Sprintf("%s phase %d answered", d.id, phase+1), 3*time.Minute, func() bool { return d.answered() == (phase+1)*n })
		}
		wait()
		var keys []string
		for i := phase * dups; i < (phase+1)*dups; i++ {
			keys = append(keys, handKey(i))
		}
		if !hand.answered(keys) {
			t.Fatalf("hand-published phase %d sales never all answered", phase+1)
		}
	}
	busy := 0
	for _, p := range procs {
		if p.count("batch answered") > 0 {
			busy++
		}
	}
	if busy != workers {
		t.Errorf("%d of %d workers answered anything: the subscription is not shared", busy, workers)
	}

	// Batch closes: each device's totals as it counted them.
	for _, d := range devs {
		var sum int64
		for i := 0; i < phases*n; i++ {
			sum += amount(d.id, i)
		}
		key := "batch-" + d.id
		d.put(t, wsync.KindBatch, key, wsync.BatchClose{V: wsync.Version, Key: key, Device: d.id, OpenedAt: opened,
			ClosedAt: time.Now().UTC().Add(time.Minute), Totals: []wsync.BatchTotal{
				{Scheme: "alipay", Currency: "KRW", SalesCount: int64(phases * n), SalesMinor: sum}}})
	}
	for _, d := range devs {
		waitFor(t, d.id+" batch close answered", 60*time.Second, func() bool { _, ok := d.result("batch-" + d.id); return ok })
		if r, _ := d.result("batch-" + d.id); r.Status != wsync.ResultRecorded {
			t.Errorf("%s batch close: %s %q", d.id, r.Status, r.Reason)
		}
		waitFor(t, d.id+" outbox drained", 30*time.Second, func() bool { return d.depth() == 0 })
	}

	// Totals through posgw ledger, while the workers run.
	out, err := exec.Command(bins["posgw"], "ledger", "-ledger", url, "-totals", "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger -totals: %v\n%s", err, out)
	}
	got := map[string]gateway.Total{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var tot gateway.Total
		if err := json.Unmarshal([]byte(line), &tot); err != nil {
			t.Fatalf("totals line %q: %v", line, err)
		}
		got[tot.Device] = tot
	}
	for _, id := range append([]string{"dev-h"}, users[1:]...) {
		count := phases * n
		if id == "dev-h" {
			count = phases * dups
		}
		var sum int64
		for i := 0; i < count; i++ {
			sum += amount(id, i)
		}
		if tot := got[id]; tot.SalesCount != int64(count) || tot.SalesMinor != sum || tot.NetMinor != sum || tot.Currency != "KRW" {
			t.Errorf("%s totals %+v, the device counted %d sales of %d minor units", id, tot, count, sum)
		}
	}
	for _, p := range procs {
		p.term()
	}

	ledger, err := gateway.OpenPG(context.Background(), gateway.PGConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	entries := map[string]gateway.Entry{}
	if err := ledger.ForEach(func(e gateway.Entry) error {
		if _, dup := entries[e.Key]; dup {
			t.Errorf("key %s twice in the ledger", e.Key)
		}
		entries[e.Key] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check := func(dev, key string, i int, got []wsync.PaymentResult) {
		e, ok := entries[key]
		delete(entries, key)
		switch {
		case !ok:
			t.Errorf("%s missing from the ledger", key)
			return
		case e.Device != dev || e.AmountMinor != amount(dev, i) || e.Status != wsync.ResultApproved || e.Requests < 1:
			t.Errorf("ledger entry %+v", e)
		}
		if len(got) == 0 {
			t.Errorf("%s: no result reached %s", key, dev)
		}
		for _, r := range got {
			if r.Status != e.Status || !r.DecidedAt.Equal(e.DecidedAt) {
				t.Errorf("%s: result %s decided at %s, the ledger says %s at %s: decided twice", key, r.Status, r.DecidedAt, e.Status, e.DecidedAt)
			}
		}
	}
	for _, d := range devs {
		for i := 0; i < phases*n; i++ {
			r, _ := d.result(saleKey(d.id, i))
			var got []wsync.PaymentResult
			if r.Key != "" {
				got = append(got, r)
			}
			check(d.id, saleKey(d.id, i), i, got)
		}
	}
	hand.mu.Lock()
	for i := 0; i < phases*dups; i++ {
		k := handKey(i)
		if i < dups && entries[k].Requests < copies {
			t.Errorf("%s: %d requests recorded, at least %d were published", k, entries[k].Requests, copies)
		}
		check("dev-h", k, i, hand.results[k])
	}
	hand.mu.Unlock()
	for k := range entries {
		t.Errorf("unexpected ledger entry %s", k)
	}
	for i, p := range procs {
		t.Logf("worker %d: %d batches answered, %d starts, %d outage warnings", i+1, p.count("batch answered"),
			p.count("posgw starting"), p.count("ledger database unavailable"))
		if strings.Contains(p.out.String(), "281234567890123456") {
			t.Error("posgw logged a full payment code")
		}
	}
}
