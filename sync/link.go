package sync

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	stdsync "sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Pending is one outbox entry as the link sees it.
type Pending struct {
	Seq  uint64
	Data []byte // an OutboxMessage encoded as JSON
}

// Outbox is the durable queue the link drains. store.Store satisfies it through a
// small adapter in the daemon.
type Outbox interface {
	// Pending returns up to max entries in FIFO order, skipping those skip reports.
	Pending(max int, skip func(seq uint64) bool) ([]Pending, error)
}

// OutboxMessage is what the sale engine puts into the outbox: what to publish and the
// idempotency key whose result finishes it.
type OutboxMessage struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Payload json.RawMessage `json:"payload"`
}

// Config configures a Link.
type Config struct {
	BrokerURL string // tcp://host:1883, ssl://host:8883
	DeviceID  string
	Username  string
	Password  string
	TLS       *tls.Config // nil for plain TCP

	Window      int           // entries in flight at once; default 32
	ResendAfter time.Duration // resend an unanswered entry after this; default 15s
	Session     uint64        // persistent session counter for birth and will
	Version     string        // firmware version reported in the birth message

	Outbox Outbox
	// OnResult receives each valid result. It runs on the link's goroutine and should
	// return once the result is durably applied (or found to be stale).
	OnResult func(ctx context.Context, r PaymentResult)
	Log      *slog.Logger
}

// Link is the device's MQTT connection. Create it with NewLink and start it with Run.
type Link struct {
	cfg     Config
	log     *slog.Logger
	kick    chan struct{}
	results chan mqtt.Message
	reset   chan struct{}
	online  atomic.Bool

	mu       stdsync.Mutex
	inflight map[uint64]flight // guarded by mu
}

type flight struct {
	key  string
	sent time.Time
}

// NewLink validates cfg and returns a Link.
func NewLink(cfg Config) (*Link, error) {
	if cfg.BrokerURL == "" {
		return nil, fmt.Errorf("sync: no broker URL")
	}
	if !ValidDeviceID(cfg.DeviceID) {
		return nil, fmt.Errorf("sync: invalid device id %q", cfg.DeviceID)
	}
	if cfg.Outbox == nil || cfg.OnResult == nil {
		return nil, fmt.Errorf("sync: Outbox and OnResult are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = 32
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Link{
		cfg:      cfg,
		log:      cfg.Log,
		kick:     make(chan struct{}, 1),
		results:  make(chan mqtt.Message, 256),
		reset:    make(chan struct{}, 1),
		inflight: make(map[uint64]flight),
	}, nil
}

// Kick tells the link that the outbox has new entries. It never blocks.
func (l *Link) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Online reports whether the MQTT connection is open now.
func (l *Link) Online() bool { return l.online.Load() }

// InFlight reports how many entries are published and waiting for their result.
func (l *Link) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.inflight)
}

func (l *Link) status(state string) []byte {
	b, _ := json.Marshal(Status{V: Version, Device: l.cfg.DeviceID, State: state, Session: l.cfg.Session, At: time.Now().UTC(), Version: l.cfg.Version})
	return b
}

// Run connects and drains the outbox until ctx is done. A cancelled context is a clean
// stop and returns nil.
func (l *Link) Run(ctx context.Context) error {
	opts := mqtt.NewClientOptions().
		AddBroker(l.cfg.BrokerURL).
		SetClientID("posd-"+l.cfg.DeviceID).
		SetCleanSession(false).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2*time.Second).
		SetMaxReconnectInterval(30*time.Second).
		SetKeepAlive(30*time.Second).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second).
		SetBinaryWill(StatusTopic(l.cfg.DeviceID), l.status("offline"), 1, true)
	if l.cfg.Username != "" {
		opts.SetUsername(l.cfg.Username).SetPassword(l.cfg.Password)
	}
	if l.cfg.TLS != nil {
		opts.SetTLSConfig(l.cfg.TLS)
	}
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		l.online.Store(false)
		l.log.Warn("broker connection lost", "err", err)
	})
	opts.SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
		l.log.Debug("reconnecting to broker")
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Subscriptions are made again on every connect; paho's handlers must not block.
		go l.onConnect(ctx, c)
	})
	client := mqtt.NewClient(opts)
	client.Connect() // with ConnectRetry the token completes only once connected
	l.log.Info("connecting to broker", "broker", l.cfg.BrokerURL, "device", l.cfg.DeviceID, "session", l.cfg.Session)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer func() {
		if client.IsConnectionOpen() {
			t := client.Publish(StatusTopic(l.cfg.DeviceID), 1, true, l.status("offline"))
			t.WaitTimeout(2 * time.Second)
		}
		client.Disconnect(250)
		l.online.Store(false)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-l.results:
			l.handleResult(ctx, m)
		case <-l.reset:
			// A new connection: everything unanswered goes out again.
			l.mu.Lock()
			clear(l.inflight)
			l.mu.Unlock()
			l.drain(client, time.Now())
		case <-l.kick:
			l.drain(client, time.Now())
		case now := <-tick.C:
			l.drain(client, now)
		}
	}
}

func (l *Link) onConnect(ctx context.Context, c mqtt.Client) {
	t := c.Subscribe(ResultTopic(l.cfg.DeviceID), 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case l.results <- m:
		default:
			l.log.Warn("result queue full; dropping a result (the request will be resent)", "topic", m.Topic())
		}
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		l.log.Error("subscribe to results failed; reconnecting", "err", t.Error())
		c.Disconnect(0) // AutoReconnect does not apply to a deliberate disconnect, so retry by hand
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
				c.Connect()
			}
		}()
		return
	}
	b := c.Publish(StatusTopic(l.cfg.DeviceID), 1, true, l.status("online"))
	b.WaitTimeout(10 * time.Second)
	l.online.Store(true)
	l.log.Info("broker connected", "broker", l.cfg.BrokerURL)
	select {
	case l.reset <- struct{}{}:
	default:
	}
}

// drain publishes outbox entries that are not in flight, up to the window, and resends
// entries whose result is overdue.
func (l *Link) drain(c mqtt.Client, now time.Time) {
	if !c.IsConnectionOpen() {
		return
	}
	l.mu.Lock()
	var overdue []uint64
	for seq, f := range l.inflight {
		if now.Sub(f.sent) >= l.cfg.ResendAfter {
			overdue = append(overdue, seq)
		}
	}
	for _, seq := range overdue {
		delete(l.inflight, seq)
	}
	room := l.cfg.Window - len(l.inflight)
	l.mu.Unlock()
	if len(overdue) > 0 {
		sort.Slice(overdue, func(i, j int) bool { return overdue[i] < overdue[j] })
		l.log.Info("resending unanswered requests", "count", len(overdue))
	}
	if room <= 0 {
		return
	}
	pending, err := l.cfg.Outbox.Pending(room, func(seq uint64) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, ok := l.inflight[seq]
		return ok
	})
	if err != nil {
		l.log.Error("read outbox", "err", err)
		return
	}
	type sent struct {
		seq uint64
		tok mqtt.Token
	}
	var toks []sent
	for _, p := range pending {
		var m OutboxMessage
		if err := json.Unmarshal(p.Data, &m); err != nil || m.Key == "" {
			l.log.Error("skipping unreadable outbox entry", "seq", p.Seq, "err", err)
			continue
		}
		topic, err := UpTopic(l.cfg.DeviceID, m.Kind)
		if err != nil {
			l.log.Error("skipping outbox entry", "seq", p.Seq, "err", err)
			continue
		}
		l.mu.Lock()
		l.inflight[p.Seq] = flight{key: m.Key, sent: now}
		l.mu.Unlock()
		toks = append(toks, sent{p.Seq, c.Publish(topic, 1, false, []byte(m.Payload))})
	}
	for _, s := range toks {
		if !s.tok.WaitTimeout(10*time.Second) || s.tok.Error() != nil {
			// Not lost: the entry stays in the outbox and goes out again.
			l.log.Warn("publish not acknowledged by broker; will resend", "seq", s.seq, "err", s.tok.Error())
			l.mu.Lock()
			delete(l.inflight, s.seq)
			l.mu.Unlock()
		}
	}
}

func (l *Link) handleResult(ctx context.Context, m mqtt.Message) {
	var r PaymentResult
	if err := Decode(m.Payload(), &r); err != nil {
		l.log.Warn("ignoring malformed result", "topic", m.Topic(), "bytes", len(m.Payload()), "err", err)
		return
	}
	if err := r.Validate(); err != nil {
		l.log.Warn("ignoring invalid result", "topic", m.Topic(), "err", err)
		return
	}
	l.cfg.OnResult(ctx, r)
	l.mu.Lock()
	for seq, f := range l.inflight {
		if f.key == r.Key {
			delete(l.inflight, seq)
		}
	}
	l.mu.Unlock()
}
