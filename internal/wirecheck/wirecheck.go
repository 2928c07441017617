package wirecheck

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	stdsync "sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/docs/schema"
)

// Filter is what a Watcher subscribes to.
const Filter = "walletless/v1/devices/#"

// Watcher validates every message it receives; see Watch.
type Watcher struct {
	t      testing.TB
	mu     stdsync.Mutex
	errs   []string
	seen   map[string]int
	skip   func(string) bool
	client mqtt.Client
}

// Options say how the watcher logs in.
type Options struct {
	Username, Password string
	// Skip, when set, leaves out the topics it returns true for: those a test's own
	// hand-made client publishes on (the conformance kit's devices, for example).
	Skip func(topic string) bool
}

// Watch connects to brokerURL, subscribes to Filter at QoS 1 and validates every
// message until the test ends; then it fails t once per invalid message (topic,
// schema error and the start of the payload). It fails t at once when it cannot
// subscribe.
func Watch(t testing.TB, brokerURL string, o Options) *Watcher {
	t.Helper()
	w := &Watcher{t: t, seen: map[string]int{}, skip: o.Skip}
	var b [4]byte
	_, _ = rand.Read(b[:])
	subscribed := make(chan error, 1)
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("wirecheck-" + hex.EncodeToString(b[:])).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(200 * time.Millisecond).
		SetOrderMatters(false).
		SetDefaultPublishHandler(w.onMessage).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.Subscribe(Filter, 1, w.onMessage)
			tok.WaitTimeout(10 * time.Second)
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	if o.Username != "" {
		opts.SetUsername(o.Username).SetPassword(o.Password)
	}
	w.client = mqtt.NewClient(opts)
	if tok := w.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("wirecheck: connect to %s: %v", brokerURL, tok.Error())
	}
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("wirecheck: subscribe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("wirecheck: no subscription within 10s")
	}
	t.Cleanup(w.finish)
	return w
}

func (w *Watcher) onMessage(_ mqtt.Client, m mqtt.Message) {
	name, _ := schema.ForTopic(m.Topic())
	err := schema.ValidateTopic(m.Topic(), m.Payload())
	if exempted(m.Payload()) || w.skip != nil && w.skip(m.Topic()) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		p := m.Payload()
		if len(p) > 300 {
			p = p[:300]
		}
		w.errs = append(w.errs, fmt.Sprintf("%s: %v\n\tpayload: %s", m.Topic(), err, p))
		return
	}
	w.seen[name]++
}

var (
	exemptMu stdsync.Mutex
	exempt   = map[string]bool{}
)

// Exempt marks a payload published by a test's own hand-made client (a probe, or a
// peer that is broken on purpose): no watcher reports it. What posd and posgw
// publish is never exempted.
func Exempt(payload []byte) {
	exemptMu.Lock()
	exempt[string(payload)] = true
	exemptMu.Unlock()
}

func exempted(payload []byte) bool {
	exemptMu.Lock()
	defer exemptMu.Unlock()
	return exempt[string(payload)]
}

// Seen returns how many valid messages of each schema the watcher saw so far.
func (w *Watcher) Seen() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.seen))
	for k, v := range w.seen {
		out[k] = v
	}
	return out
}

// Errors returns the mismatches seen so far.
func (w *Watcher) Errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errs...)
}

func (w *Watcher) finish() {
	w.client.Disconnect(50)
	for _, e := range w.Errors() {
		w.t.Errorf("wirecheck: payload does not match docs/schema/v1: %s", e)
	}
}
