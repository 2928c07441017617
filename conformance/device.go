package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	stdsync "sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/docs/schema"
	wsync "github.com/walletless/walletless/sync"
)

// Exchange is one message of a scenario's evidence.
type Exchange struct {
	Dir     string `json:"dir"` // "sent" or "got"
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
}

// device is one simulated terminal: an MQTT client subscribed to its results.
type device struct {
	id      string
	client  mqtt.Client
	timeout time.Duration
	quiet   time.Duration

	mu      stdsync.Mutex
	results []wsync.PaymentResult
	bad     []string // answers that broke the schema or did not decode
	log     *[]Exchange
	logMu   *stdsync.Mutex
	changed chan struct{}
}

func dial(ctx context.Context, cfg Config, id, user string) (*device, error) {
	d := &device{id: id, timeout: cfg.Timeout, quiet: cfg.Quiet, changed: make(chan struct{}, 1)}
	opts := mqtt.NewClientOptions().AddBroker(cfg.BrokerURL).
		SetClientID(fmt.Sprintf("%s-conformance-%d", id, time.Now().UnixNano()%1_000_000)).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
		SetOrderMatters(false).SetConnectTimeout(cfg.Timeout).SetMaxReconnectInterval(time.Second)
	if user != "" {
		opts.SetUsername(user).SetPassword(cfg.Password)
	}
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	if open := wsync.OpenConnection(cfg.BrokerURL, cfg.TLS); open != nil {
		opts.SetCustomOpenConnectionFn(open)
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		c.Subscribe(wsync.ResultTopic(id), 1, d.onResult).WaitTimeout(cfg.Timeout)
	})
	d.client = mqtt.NewClient(opts)
	tok := d.client.Connect()
	if !tok.WaitTimeout(cfg.Timeout) {
		return nil, fmt.Errorf("conformance: connect to %s: no answer within %s", cfg.BrokerURL, cfg.Timeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("conformance: connect to %s as %s: %w", cfg.BrokerURL, id, err)
	}
	st := d.client.Subscribe(wsync.ResultTopic(id), 1, d.onResult)
	if !st.WaitTimeout(cfg.Timeout) || st.Error() != nil {
		d.client.Disconnect(0)
		return nil, fmt.Errorf("conformance: subscribe to %s: %v", wsync.ResultTopic(id), st.Error())
	}
	if r, ok := st.(*mqtt.SubscribeToken); ok && r.Result()[wsync.ResultTopic(id)] == 0x80 {
		d.client.Disconnect(0)
		return nil, fmt.Errorf("conformance: the broker refused %s its result topic (check the ACL and -username)", id)
	}
	return d, nil
}

func (d *device) close() { d.client.Disconnect(100) }

var codeField = regexp.MustCompile(`"code":"([^"]*)"`)

// setLog points the device's evidence at a scenario's log (nil: none).
func (d *device) setLog(log *[]Exchange, mu *stdsync.Mutex) {
	d.mu.Lock()
	d.log, d.logMu = log, mu
	d.mu.Unlock()
}

func (d *device) record(dir, topic string, payload []byte) {
	d.mu.Lock()
	log, logMu := d.log, d.logMu
	d.mu.Unlock()
	if log == nil {
		return
	}
	// The kit's code is a test code, but the evidence masks it as every log must.
	p := codeField.ReplaceAllStringFunc(string(payload), func(m string) string {
		sub := codeField.FindStringSubmatch(m)
		v := sub[1]
		if len(v) > 4 {
			v = "…" + v[len(v)-4:]
		}
		return `"code":"` + v + `"`
	})
	if len(p) > 600 {
		p = p[:600] + fmt.Sprintf("… (%d bytes)", len(payload))
	}
	logMu.Lock()
	*log = append(*log, Exchange{Dir: dir, Topic: topic, Payload: p})
	logMu.Unlock()
}

func (d *device) onResult(_ mqtt.Client, m mqtt.Message) {
	d.record("got", m.Topic(), m.Payload())
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := schema.ValidateTopic(m.Topic(), m.Payload()); err != nil {
		d.bad = append(d.bad, err.Error())
	}
	rs, errs := wsync.DecodeResults(m.Payload())
	for _, e := range errs {
		d.bad = append(d.bad, e.Error())
	}
	d.results = append(d.results, rs...)
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// publish sends raw bytes on topic and waits for the broker's PUBACK.
func (d *device) publish(topic string, payload []byte) error {
	d.record("sent", topic, payload)
	tok := d.client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(d.timeout) {
		return fmt.Errorf("publish on %s: no PUBACK within %s", topic, d.timeout)
	}
	return tok.Error()
}

// send marshals msg and publishes it on kind's topic.
func (d *device) send(kind string, msg any) ([]byte, error) {
	raw, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	topic, err := wsync.UpTopic(d.id, kind)
	if err != nil {
		return nil, err
	}
	return raw, d.publish(topic, raw)
}

// count returns how many results for (kind, key) arrived so far.
func (d *device) count(kind, key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, r := range d.results {
		if r.Key == key && resultKind(r) == kind {
			n++
		}
	}
	return n
}

func resultKind(r wsync.PaymentResult) string {
	if r.Kind == "" {
		return wsync.KindPayment
	}
	return r.Kind
}

// await waits for the (n+1)-th result for (kind, key), where n is after (the count
// before the request was sent), and returns it.
func (d *device) await(ctx context.Context, kind, key string, after int) (wsync.PaymentResult, error) {
	deadline := time.NewTimer(d.timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		n := 0
		for _, r := range d.results {
			if r.Key == key && resultKind(r) == kind {
				if n == after {
					d.mu.Unlock()
					return r, nil
				}
				n++
			}
		}
		d.mu.Unlock()
		select {
		case <-d.changed:
		case <-deadline.C:
			return wsync.PaymentResult{}, fmt.Errorf("no %s answer for key %s within %s", kind, key, d.timeout)
		case <-ctx.Done():
			return wsync.PaymentResult{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ask sends msg of kind and waits for its answer.
func (d *device) ask(ctx context.Context, kind, key string, msg any) (wsync.PaymentResult, error) {
	n := d.count(kind, key)
	if _, err := d.send(kind, msg); err != nil {
		return wsync.PaymentResult{}, err
	}
	return d.await(ctx, kind, key, n)
}

// badAnswers returns the answers that broke the schema so far.
func (d *device) badAnswers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.bad...)
}
