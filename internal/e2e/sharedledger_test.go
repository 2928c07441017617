package e2e

import (
	"bytes"
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

// TestSharedLedgerTwoProcesses: two posgw processes share one subscription; one owns
// the ledger and serves it, the other decides through -ledger-url. Devices stream
// sales (links resending what is unanswered) and a hand-driven device publishes
// every sale three times in a row, so copies of a key reach both processes. Then the
// ledger owner is SIGKILLed mid-stream and started again. Every key is in the ledger
// once, decided once (every result a device received for it carries the same
// decision time as the ledger), and every device got every result.
func TestSharedLedgerTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const (
		devices = 3
		n       = 120 // sales per device and phase
		dups    = 40  // hand-published keys per phase
		copies  = 3
	)
	users := []string{"dev-h"}
	for i := 1; i <= devices; i++ {
		users = append(users, fmt.Sprintf("dev-s%d", i))
	}
	m := newMosquitto(t, mosqOpts{persistence: true, users: users})
	dir := t.TempDir()
	bins := build(t, dir, "posgw")
	tokFile := filepath.Join(dir, "ledger.token")
	if err := os.WriteFile(tokFile, []byte("e2e-shared-ledger-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ledgerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ownerData := filepath.Join(dir, "owner")
	owner := startPosgw(t, bins["posgw"], "-broker", m.URL(), "-username", "posgw", "-data", ownerData,
		"-client-id", "posgw-owner", "-ledger-listen", ledgerAddr, "-ledger-token-file", tokFile, "-log-level", "debug")
	front := startPosgw(t, bins["posgw"], "-broker", m.URL(), "-username", "posgw", "-data", filepath.Join(dir, "front"),
		"-client-id", "posgw-front", "-ledger-url", "http://"+ledgerAddr, "-ledger-token-file", tokFile, "-ledger-timeout", "5s",
		"-log-level", "debug")
	for _, p := range []*posgwProc{owner, front} {
		waitFor(t, "posgw subscribed", 30*time.Second, func() bool { return p.count("gateway subscribed") >= 1 })
	}

	var devs []*testDevice
	for i := 1; i <= devices; i++ {
		id := fmt.Sprintf("dev-s%d", i)
		d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
			BrokerURL: m.URL(), DeviceID: id, Username: id, Password: password, ResendAfter: time.Second,
		})
		devs = append(devs, d)
		stop := d.run()
		defer stop()
	}
	hand := newDupSender(t, m.URL(), "dev-h")
	amount := func(dev string, i int) int64 { return int64(100 + i*3 + len(dev)) }
	handKey := func(i int) string { return saleKey("dev-h", i) }

	// Phase 1: both processes up.
	var phase1 []string
	for i := 0; i < n; i++ {
		for _, d := range devs {
			d.sale(t, i, amount(d.id, i))
		}
		if i < dups {
			hand.publish(t, handKey(i), amount("dev-h", i), copies)
			phase1 = append(phase1, handKey(i))
		}
	}
	for _, d := range devs {
		waitFor(t, d.id+" phase 1 answered", 60*time.Second, func() bool { return d.answered() == n })
	}
	waitFor(t, "hand-published sales answered", 60*time.Second, func() bool { return hand.answered(phase1) })
	for _, p := range []*posgwProc{owner, front} {
		if p.count("batch answered") == 0 {
			t.Errorf("posgw %s answered nothing: the subscription is not shared", p.args[7])
		}
	}
	// No crash yet: each key was decided by exactly one process, once.
	if got, want := owner.count("payment decided"), devices*n+dups; got != want {
		t.Errorf("phase 1: %d 'payment decided' lines at the owner, want %d", got, want)
	}
	if got := front.count("payment decided"); got != 0 {
		t.Errorf("the front decided %d payments itself", got)
	}

	// Phase 2: the owner is killed mid-stream and started again.
	var phase2 []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the hand-driven device resends what stays unanswered, like a link
		defer wg.Done()
		for i := dups; i < 2*dups; i++ {
			hand.publish(t, handKey(i), amount("dev-h", i), copies)
		}
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(time.Second)
			all := true
			for i := dups; i < 2*dups; i++ {
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
	for i := dups; i < 2*dups; i++ {
		phase2 = append(phase2, handKey(i))
	}
	for i := n; i < 2*n; i++ {
		if i == n+n/3 {
			waitFor(t, "some phase 2 answers", 60*time.Second, func() bool { return devs[0].answered() > n+n/6 })
			owner.kill()
		}
		if i == n+2*n/3 {
			waitFor(t, "the front notices the ledger is gone", 30*time.Second, func() bool { return front.count("ledger failed") >= 1 })
			owner.start()
		}
		for _, d := range devs {
			d.sale(t, i, amount(d.id, i))
		}
	}
	for _, d := range devs {
		waitFor(t, d.id+" every sale answered", 90*time.Second, func() bool { return d.answered() == 2*n })
		waitFor(t, d.id+" outbox drained", 30*time.Second, func() bool { return d.depth() == 0 })
	}
	wg.Wait()
	if !hand.answered(phase2) {
		t.Fatal("hand-published phase 2 sales never all answered")
	}

	// posgw ledger reads the running owner's ledger through its server.
	out, err := exec.Command(bins["posgw"], "ledger", "-ledger-url", "http://"+ledgerAddr, "-ledger-token-file", tokFile, "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger -ledger-url: %v\n%s", err, out)
	}
	if lines := bytes.Count(out, []byte("\n")); lines != devices*2*n+2*dups {
		t.Errorf("posgw ledger -ledger-url listed %d entries, want %d", lines, devices*2*n+2*dups)
	}
	front.term()
	owner.term()

	// The owner's ledger file.
	ledger, err := gateway.OpenLedger(filepath.Join(ownerData, "posgw.db"), true)
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
		for i := 0; i < 2*n; i++ {
			r, _ := d.result(saleKey(d.id, i))
			var got []wsync.PaymentResult
			if r.Key != "" {
				got = append(got, r)
			}
			check(d.id, saleKey(d.id, i), i, got)
		}
	}
	hand.mu.Lock()
	for i := 0; i < 2*dups; i++ {
		k := handKey(i)
		e := entries[k]
		if i < dups && e.Requests != copies {
			t.Errorf("%s: %d requests recorded, %d were published", k, e.Requests, copies)
		}
		check("dev-h", k, i, hand.results[k])
	}
	hand.mu.Unlock()
	for k := range entries {
		t.Errorf("unexpected ledger entry %s", k)
	}
	t.Logf("front: %d batches answered, %d ledger failures; owner: %d batches answered, %d starts",
		front.count("batch answered"), front.count("ledger failed"), owner.count("batch answered"), owner.count("posgw starting"))
	// The front said once per outage that the ledger failed, not once per batch.
	if f, back := front.count("ledger failed"), front.count("ledger works again"); f < 1 || f > back+1 || f > 3 {
		t.Errorf("front logged %d ledger failures and %d recoveries for one outage", f, back)
	}
	for _, p := range []*posgwProc{owner, front} {
		if strings.Contains(p.out.String(), "281234567890123456") {
			t.Error("posgw logged a full payment code")
		}
	}
}

// TestGatewayReconnectsAfterBrokerRestart: a broker without persistence forgets the
// gateway's session when it restarts; the gateway reconnects with backoff, subscribes
// again and answers the next sale. A short outage costs one log line, not one per
// attempt.
func TestGatewayReconnectsAfterBrokerRestart(t *testing.T) {
	m := newMosquitto(t, mosqOpts{persistence: false, users: []string{"dev-rc"}})
	gw := startGateways(t, m.URL(), 1)
	g := gw.gws[0]
	saleOnce := func(key string) {
		t.Helper()
		dev := mustConnect(t, m.URL(), "dev-rc", "posd-dev-rc-"+key)
		dev.sub(t, wsync.ResultTopic("dev-rc"))
		raw, _ := json.Marshal(wsync.PaymentRequest{V: 1, Key: key, Device: "dev-rc", AmountMinor: 500, Currency: "KRW",
			Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
		dev.pub(t, wsync.RequestTopic("dev-rc"), false, string(raw))
		waitFor(t, "result for "+key, 30*time.Second, func() bool {
			dev.mu.Lock()
			defer dev.mu.Unlock()
			for _, in := range dev.in {
				if strings.Contains(string(in.Payload()), key) {
					return true
				}
			}
			return false
		})
		dev.c.Disconnect(0)
	}
	saleOnce("before-restart")
	m.stop()
	waitFor(t, "gateway notices the broker is gone", 30*time.Second, func() bool { return !g.Ready() })
	time.Sleep(1500 * time.Millisecond) // long enough for several failed attempts
	m.start()
	waitFor(t, "gateway subscribed again", 60*time.Second, g.Ready)
	saleOnce("after-restart")
	if s := g.Stats(); s.Connects != 2 || s.Decided != 2 {
		t.Errorf("stats %+v: want 2 connects and 2 decisions", s)
	}
	if got := gw.logs.count("broker unreachable"); got != 1 {
		t.Errorf("%d 'broker unreachable' lines for one short outage, want 1:\n%s", got, gw.logs)
	}
	entries := gw.entries(t)
	if len(entries) != 2 {
		t.Errorf("ledger %+v", entries)
	}
}
