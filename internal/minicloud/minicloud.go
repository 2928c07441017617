package minicloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	stdsync "sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	wsync "github.com/walletless/walletless/sync"
)

// Flaws are deliberate deviations from the contract.
type Flaws struct {
	RedecideReplays bool // decide every payment again: a replay gets a new decided_at
	NoStaleness     bool // approve payment requests whatever their age
	Persistent      bool // a persistent MQTT session under a fixed client id
	NoTombstone     bool // a reversal of an unseen key is answered but not recorded
	UnboundedRefund bool // approve refunds above the sale's rest
	AnswerMalformed bool // decode leniently: unknown fields, trailing data and any size are accepted
	RefuseOffline   bool // refuse PaymentRequest's offline field as unknown (the old document's receiver)
}

// OldDocument is the behaviour of a cloud written to docs/protocol.md as it was
// before issue 15: a persistent session and no staleness rule. It refuses the
// offline field of PaymentRequest as an unknown field, as that document said.
var OldDocument = Flaws{NoStaleness: true, Persistent: true, RefuseOffline: true}

// State is the cloud's store; keep it to restart a cloud with its records.
type State struct {
	mu       stdsync.Mutex
	entries  map[string]*entry
	attempts map[string]bool
	batches  map[string]*batch
}

// NewState returns an empty store.
func NewState() *State {
	return &State{entries: map[string]*entry{}, attempts: map[string]bool{}, batches: map[string]*batch{}}
}

type entry struct {
	device, kind, status, reason string
	scheme, currency, batch      string
	amount, refunded             int64
	created, decided, reversed   time.Time
}

type batch struct {
	device, status, reason string
	decided                time.Time
}

// Config configures a Cloud.
type Config struct {
	BrokerURL, Username, Password string
	ClientID                      string // default "minicloud-" and random digits at each Start; "minicloud" with Flaws.Persistent
	State                         *State // default a new one
	Flaws                         Flaws
	MaxAge                        time.Duration // default 60s
}

// Cloud is a running minicloud.
type Cloud struct {
	cfg    Config
	client mqtt.Client

	// Results are published by a goroutine of their own, in the order they were
	// decided: paho's handler runs on its router (SetOrderMatters(true)) and must
	// not call Publish, which can block on the same goroutine for paho's 30 s write
	// timeout (the cloud-restart scenario once timed out that way under load).
	mu      stdsync.Mutex
	results [][]byte // guarded by mu: topic and payload, alternating
	wake    chan struct{}
	done    chan struct{}
	sent    chan struct{}
	stop    stdsync.Once
}

// Start connects, subscribes (shared group "minicloud") and serves until Stop.
func Start(cfg Config) (*Cloud, error) {
	switch {
	case cfg.ClientID != "":
	case cfg.Flaws.Persistent: // the flaw needs the session back under the same id
		cfg.ClientID = "minicloud"
	default:
		// A clean session needs no stable id, and a restart under the same id races
		// the broker's cleanup of the old connection, which can drop the new one's
		// subscriptions (mochi v2.7.9 checks IsTakenOver before it unsubscribes the
		// old client by id).
		cfg.ClientID = fmt.Sprintf("minicloud-%d", rand.Uint64())
	}
	if cfg.State == nil {
		cfg.State = NewState()
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 60 * time.Second
	}
	c := &Cloud{cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}), sent: make(chan struct{})}
	opts := mqtt.NewClientOptions().AddBroker(cfg.BrokerURL).SetClientID(cfg.ClientID).
		SetCleanSession(!cfg.Flaws.Persistent).SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(c.onMessage)
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	c.client = mqtt.NewClient(opts)
	if tok := c.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("minicloud: connect: %v", tok.Error())
	}
	go c.publishResults()
	filters := map[string]byte{}
	for _, f := range wsync.CloudFilters() {
		filters["$share/minicloud/"+f] = 1
	}
	if tok := c.client.SubscribeMultiple(filters, c.onMessage); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.Stop()
		return nil, fmt.Errorf("minicloud: subscribe: %v", tok.Error())
	}
	return c, nil
}

// Stop disconnects; results not yet published are dropped, as a crash would.
func (c *Cloud) Stop() {
	c.stop.Do(func() {
		close(c.done)
		<-c.sent
		c.client.Disconnect(100)
	})
}

// publishResults publishes the queued results in order until Stop.
func (c *Cloud) publishResults() {
	defer close(c.sent)
	for {
		c.mu.Lock()
		q := c.results
		c.results = nil
		c.mu.Unlock()
		for i := 0; i+1 < len(q); i += 2 {
			tok := c.client.Publish(string(q[i]), 1, false, q[i+1])
			select {
			case <-tok.Done():
			case <-c.done:
				return
			}
		}
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
	}
}

func (c *Cloud) onMessage(_ mqtt.Client, m mqtt.Message) {
	device, err := wsync.DeviceFromTopic(m.Topic())
	if err != nil {
		return
	}
	var ups []wsync.UpMessage
	if m.Topic() == wsync.BundleTopic(device) {
		claimed, items, _ := wsync.DecodeBundle(m.Payload())
		if claimed != device {
			return
		}
		ups = items
	} else {
		kind, err := wsync.KindFromTopic(m.Topic())
		if err != nil {
			return
		}
		msg, key, dev, err := c.decode(kind, m.Payload())
		if err != nil || dev != device {
			return
		}
		ups = append(ups, wsync.UpMessage{Kind: kind, Key: key, Device: dev, Msg: msg})
	}
	for _, u := range ups {
		res := c.apply(device, u)
		res.V, res.Key, res.Kind = wsync.Version, u.Key, u.Kind
		raw, _ := json.Marshal(res)
		c.mu.Lock()
		c.results = append(c.results, []byte(wsync.ResultTopic(device)), raw)
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// decode is wsync.DecodeUp, made lenient by AnswerMalformed and old by refusing
// the offline field when the cloud follows the old document.
func (c *Cloud) decode(kind string, payload []byte) (any, string, string, error) {
	if c.cfg.Flaws.RefuseOffline && kind == wsync.KindPayment && bytes.Contains(payload, []byte(`"offline"`)) {
		return nil, "", "", fmt.Errorf("minicloud: unknown field offline (old document)")
	}
	if !c.cfg.Flaws.AnswerMalformed {
		return wsync.DecodeUp(kind, payload)
	}
	switch kind {
	case wsync.KindPayment:
		var p wsync.PaymentRequest
		dec := json.NewDecoder(bytes.NewReader(payload))
		if err := dec.Decode(&p); err != nil {
			return nil, "", "", err
		}
		return &p, p.Key, p.Device, nil
	}
	return wsync.DecodeUp(kind, payload)
}

func (c *Cloud) apply(device string, u wsync.UpMessage) wsync.PaymentResult {
	st := c.cfg.State
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now().UTC()
	f := c.cfg.Flaws
	switch m := u.Msg.(type) {
	case *wsync.PaymentRequest:
		e, ok := st.entries[m.Key]
		if ok && (e.device != device || e.kind != "sale") {
			return wsync.PaymentResult{Status: wsync.ResultDeclined, Reason: "idempotency key already used", DecidedAt: now}
		}
		if ok && !f.RedecideReplays {
			return answer(e)
		}
		status, reason := wsync.ResultApproved, ""
		switch {
		case m.Scheme == "" || m.AmountMinor > 1_000_000:
			status, reason = wsync.ResultDeclined, "not accepted"
		case !f.NoStaleness && !m.Offline && now.Sub(m.CreatedAt) > c.cfg.MaxAge:
			status, reason = wsync.ResultDeclined, "request too old"
		}
		if ok && e.status == wsync.ResultReversed {
			return answer(e)
		}
		e = &entry{device: device, kind: "sale", status: status, reason: reason, scheme: m.Scheme, currency: m.Currency,
			batch: m.Batch, amount: m.AmountMinor, created: m.CreatedAt, decided: now}
		st.entries[m.Key] = e
		return answer(e)
	case *wsync.QueryRequest:
		e, ok := st.entries[m.Key]
		if !ok || e.device != device || e.kind != "sale" {
			return wsync.PaymentResult{Status: wsync.ResultUnknown, DecidedAt: now}
		}
		return answer(e)
	case *wsync.ReversalRequest:
		e, ok := st.entries[m.Key]
		switch {
		case !ok:
			if !f.NoTombstone {
				st.entries[m.Key] = &entry{device: device, kind: "sale", status: wsync.ResultReversed, decided: now, reversed: now}
			}
			return wsync.PaymentResult{Status: wsync.ResultReversed, DecidedAt: now}
		case e.device != device || e.kind != "sale" || e.refunded > 0:
			return wsync.PaymentResult{Status: wsync.ResultDeclined, Reason: "cannot be reversed", DecidedAt: now}
		case e.status == wsync.ResultApproved:
			e.status, e.reversed = wsync.ResultReversed, now
		}
		r := answer(e)
		r.Status = wsync.ResultReversed
		return r
	case *wsync.RefundRequest:
		if e, ok := st.entries[m.Key]; ok {
			if e.device != device || e.kind != "refund" {
				return wsync.PaymentResult{Status: wsync.ResultDeclined, Reason: "idempotency key already used", DecidedAt: now}
			}
			return answer(e)
		}
		orig, ok := st.entries[m.OriginalKey]
		e := &entry{device: device, kind: "refund", status: wsync.ResultApproved, currency: m.Currency, batch: m.Batch,
			amount: m.AmountMinor, created: m.CreatedAt, decided: now}
		switch {
		case !ok || orig.device != device || orig.kind != "sale" || orig.status != wsync.ResultApproved || orig.currency != m.Currency:
			e.status, e.reason = wsync.ResultDeclined, "original sale not refundable"
		case !f.UnboundedRefund && m.AmountMinor > orig.amount-orig.refunded:
			e.status, e.reason = wsync.ResultDeclined, "refund exceeds the rest"
		default:
			orig.refunded += m.AmountMinor
			e.scheme = orig.scheme
		}
		st.entries[m.Key] = e
		return answer(e)
	case *wsync.AttemptRecord:
		st.attempts[m.Key] = true
		return wsync.PaymentResult{Status: wsync.ResultRecorded, DecidedAt: now}
	case *wsync.BatchClose:
		if b, ok := st.batches[m.Key]; ok {
			if b.device != device {
				return wsync.PaymentResult{Status: wsync.ResultDeclined, Reason: "idempotency key already used", DecidedAt: now}
			}
			return wsync.PaymentResult{Status: b.status, Reason: b.reason, DecidedAt: b.decided}
		}
		ours := map[[2]string]wsync.BatchTotal{}
		for _, e := range st.entries {
			in := e.batch == m.Key || e.batch == "" && !e.created.Before(m.OpenedAt) && e.created.Before(m.ClosedAt)
			if e.device != device || !in || e.status != wsync.ResultApproved {
				continue
			}
			k := [2]string{e.scheme, e.currency}
			t := ours[k]
			if e.kind == "sale" {
				t.SalesCount++
				t.SalesMinor += e.amount
			} else {
				t.RefundsCount++
				t.RefundsMinor += e.amount
			}
			ours[k] = t
		}
		theirs := map[[2]string]wsync.BatchTotal{}
		for _, t := range m.Totals {
			k := [2]string{t.Scheme, t.Currency}
			t.Scheme, t.Currency = "", ""
			theirs[k] = t
		}
		var diffs []string
		for _, set := range []map[[2]string]wsync.BatchTotal{ours, theirs} {
			for k := range set {
				if ours[k] != theirs[k] {
					diffs = append(diffs, fmt.Sprintf("%s/%s: device %+v, cloud %+v", k[0], k[1], theirs[k], ours[k]))
				}
			}
		}
		sort.Strings(diffs)
		b := &batch{device: device, status: wsync.ResultRecorded, decided: now}
		if len(diffs) > 0 {
			b.status, b.reason = wsync.ResultDeclined, "totals differ: "+strings.Join(diffs, "; ")
		}
		st.batches[m.Key] = b
		return wsync.PaymentResult{Status: b.status, Reason: b.reason, DecidedAt: now}
	}
	return wsync.PaymentResult{Status: wsync.ResultDeclined, Reason: "unknown message", DecidedAt: now}
}

func answer(e *entry) wsync.PaymentResult {
	r := wsync.PaymentResult{Status: e.status, Reason: e.reason, DecidedAt: e.decided}
	if e.status == wsync.ResultReversed && !e.reversed.IsZero() {
		r.DecidedAt = e.reversed
	}
	return r
}
