package sync

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
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

// Acker is an optional interface of an Outbox: when it is implemented the link marks
// entries synced itself, many per call (one bbolt transaction), once their results
// were applied. store.Store's Ack has this signature.
type Acker interface {
	Ack(seqs ...uint64) error
}

// Depther is an optional interface of an Outbox that reports how many entries wait;
// the heartbeat carries it.
type Depther interface {
	Depth() (int, error)
}

// OutboxMessage is what the sale engine puts into the outbox: what to publish and the
// idempotency key whose result finishes it.
type OutboxMessage struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Payload json.RawMessage `json:"payload"`
}

// Health is the device's own state, reported in heartbeats.
type Health struct {
	Firmware      string // firmware version; Config.Version when empty
	ConfigVersion string
	Scanner       string // e.g. "ok", "disconnected"
	Printer       string // e.g. "ok", "paper_out"
}

// Config configures a Link. Zero values take the documented defaults.
type Config struct {
	BrokerURL string // tcp://host:1883, ssl://host:8883 (mqtts:// and tls:// work too)
	DeviceID  string
	ClientID  string // default "posd-" + DeviceID; must be stable for the persistent session
	Username  string
	Password  string
	TLS       *tls.Config // nil for plain TCP unless the files below are set

	// CAFile is a PEM bundle of the CAs that may sign the broker's certificate (default:
	// the system pool). CertFile and KeyFile are the device's own certificate for
	// mutual TLS. Setting any of them turns TLS on; they are added to a clone of TLS.
	CAFile   string
	CertFile string
	KeyFile  string

	Window int // entries in flight at once; default 256
	// Bundle is the most outbox entries sent in one publish (a Bundle on BundleTopic)
	// when several are due at once; default DefaultBundle. 1 sends each entry on its
	// own kind's topic, for a cloud that does not implement bundles.
	Bundle      int
	ResendAfter time.Duration // resend an unanswered entry after this; default 15s
	Session     uint64        // persistent session counter for birth and will
	Version     string        // firmware version reported in the birth message

	// Timeout bounds every wait for the broker (connect, subscribe, publish
	// acknowledgement); default 10s.
	Timeout time.Duration
	// KeepAlive is the MQTT keep-alive; default 30s.
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the wait between connection attempts, which
	// doubles after each failure with ±25% jitter; defaults 500ms and 30s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// Heartbeat is the interval of heartbeat messages; default 60s, negative disables.
	Heartbeat time.Duration
	// Health, if set, is called for each heartbeat.
	Health func() Health

	Outbox Outbox
	// OnResult receives each valid result. It runs on the link's goroutine and should
	// return once the result is durably applied (or found to be stale).
	OnResult func(ctx context.Context, r PaymentResult)
	// OnResults, if set, is used instead of OnResult: it receives every result that
	// arrived together, so it can apply them in one transaction. It runs on a goroutine
	// of its own, so the window refills while it syncs; calls never overlap. When it
	// returns an error nothing of the group is acknowledged and the requests are resent.
	OnResults func(ctx context.Context, rs []PaymentResult) error
	Log       *slog.Logger

	// Groups are the device's fleet groups, carried in the birth message and every
	// heartbeat so a fleet manager can filter by group.
	Groups []string
	// Subscriptions are subscribed to (QoS 1) on the link's connection at every
	// connect, after the results; their retained messages therefore arrive again at
	// each connect. Handle runs on paho's goroutines and may block briefly.
	Subscriptions []Subscription
	// OnConnect, if set, is called on a goroutine of its own after each successful
	// connect and subscribe, once the link is online (it may call Publish).
	OnConnect func()
}

// Subscription is an extra topic filter the link carries for another part of posd
// (the fleet configuration slots).
type Subscription struct {
	Filter string
	Handle func(topic string, payload []byte)
}

// Link is the device's MQTT connection. Create it with NewLink and start it with Run.
type Link struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config
	plain   string // why a plaintext connection is risky ("" when it is TLS or harmless); warned at every connect
	kick    chan struct{}
	results chan mqtt.Message
	lost    chan error
	failed  chan uint64
	online  atomic.Bool
	running atomic.Bool
	client  atomic.Pointer[mqtt.Client] // set by Run, for Publish
	lastErr atomic.Pointer[string]      // why the last connection attempt failed
	wg      stdsync.WaitGroup           // token waiters

	mu       stdsync.Mutex
	inflight map[uint64]*flight // guarded by mu
	bykey    map[string]uint64  // guarded by mu: flightKey → seq of inflight
	acking   map[uint64]bool    // guarded by mu: answered, waiting for the Acker
	ackq     chan []uint64
	applyq   chan applyJob

	stats linkStats
}

// flightKey identifies an in-flight message: a query or reversal carries the key of
// the sale it is about, so the kind is part of the identity.
func flightKey(kind, key string) string {
	if kind == "" {
		kind = KindPayment
	}
	return kind + "\x00" + key
}

type flight struct {
	key  string    // flightKey
	sent time.Time // zero: due for (re)sending
}

type linkStats struct {
	published, publishes, resent, results, acked, ignored, connects atomic.Uint64
}

// Stats are counters since the link started.
type Stats struct {
	Published uint64 // outbox entries sent, first sends and resends
	Publishes uint64 // MQTT publishes that carried them (a Bundle carries several)
	Resent    uint64 // of which resends
	Results   uint64 // valid results received (duplicates included)
	Acked     uint64 // outbox entries marked synced by the link (Acker only)
	Ignored   uint64 // malformed or invalid messages dropped
	Connects  uint64 // successful connections
}

// ErrConfig is returned by NewLink for an unusable configuration.
var ErrConfig = errors.New("sync: bad link configuration")

// NewLink validates cfg and returns a Link.
func NewLink(cfg Config) (*Link, error) {
	if cfg.BrokerURL == "" {
		return nil, fmt.Errorf("%w: no broker URL", ErrConfig)
	}
	if !ValidDeviceID(cfg.DeviceID) {
		return nil, fmt.Errorf("%w: invalid device id %q", ErrConfig, cfg.DeviceID)
	}
	if cfg.Outbox == nil || (cfg.OnResult == nil && cfg.OnResults == nil) {
		return nil, fmt.Errorf("%w: Outbox and OnResult are required", ErrConfig)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "posd-" + cfg.DeviceID
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.Bundle <= 0 {
		cfg.Bundle = DefaultBundle
	}
	cfg.Bundle = min(cfg.Bundle, MaxBundleItems)
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 15 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 500 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	plain, err := plaintextRisk(cfg)
	if err != nil {
		return nil, err
	}
	tc, err := TLSConfig(cfg.TLS, cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	return &Link{
		cfg:      cfg,
		log:      cfg.Log,
		tls:      tc,
		plain:    plain,
		kick:     make(chan struct{}, 1),
		results:  make(chan mqtt.Message, 2*cfg.Window+64),
		lost:     make(chan error, 1),
		failed:   make(chan uint64, cfg.Window),
		inflight: make(map[uint64]*flight),
		bykey:    make(map[string]uint64),
		acking:   make(map[uint64]bool),
		ackq:     make(chan []uint64, 64),
		applyq:   make(chan applyJob, 64),
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

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	return Stats{
		Published: l.stats.published.Load(), Publishes: l.stats.publishes.Load(), Resent: l.stats.resent.Load(), Results: l.stats.results.Load(),
		Acked: l.stats.acked.Load(), Ignored: l.stats.ignored.Load(), Connects: l.stats.connects.Load(),
	}
}

func (l *Link) status(state string) []byte {
	b, _ := json.Marshal(Status{V: Version, Device: l.cfg.DeviceID, State: state, Session: l.cfg.Session, At: time.Now().UTC(), Version: l.cfg.Version, Groups: l.cfg.Groups})
	return b
}

// ErrOffline is returned by Publish while the link is not connected.
var ErrOffline = errors.New("sync: not connected to the broker")

// Publish sends payload on topic at QoS 1 over the link's connection and waits for
// the broker's acknowledgement (at most the configured timeout).
func (l *Link) Publish(topic string, retained bool, payload []byte) error {
	c := l.client.Load()
	if c == nil || !l.online.Load() {
		return ErrOffline
	}
	return l.wait((*c).Publish(topic, 1, retained, payload))
}

// LastError says why the last connection attempt failed, "" when it succeeded.
func (l *Link) LastError() string {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// wait waits for t at most the configured timeout and reports its error.
func (l *Link) wait(t mqtt.Token) error {
	if !t.WaitTimeout(l.cfg.Timeout) {
		return fmt.Errorf("sync: no answer from the broker within %s", l.cfg.Timeout)
	}
	return t.Error()
}

// Run connects and drains the outbox until ctx is done, reconnecting with backoff and
// jitter whenever the connection fails. A cancelled context is a clean stop and
// returns nil. Run may be called once.
func (l *Link) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return fmt.Errorf("sync: Run called twice")
	}
	opts := ClientOptions(Client{
		BrokerURL: l.cfg.BrokerURL, ClientID: l.cfg.ClientID, Username: l.cfg.Username, Password: l.cfg.Password,
		TLS: l.tls, KeepAlive: l.cfg.KeepAlive, Timeout: l.cfg.Timeout,
		Lost: l.lost, Down: func() { l.online.Store(false) },
		OnMessage: l.onMessage, // results queued for the persistent session before we subscribe
	}).SetBinaryWill(StatusTopic(l.cfg.DeviceID), l.status("offline"), 1, true)
	client := mqtt.NewClient(opts)
	l.client.Store(&client)
	defer l.wg.Wait()
	if a, ok := l.cfg.Outbox.(Acker); ok {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.acker(ctx, a) }()
	}
	if l.cfg.OnResults != nil {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.applier(ctx) }()
	}
	l.log.Info("link starting", "broker", l.cfg.BrokerURL, "device", l.cfg.DeviceID, "session", l.cfg.Session)

	connect := func() error {
		select { // a loss reported for an earlier connection is stale now
		case <-l.lost:
		default:
		}
		err := l.connect(client)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		l.lastErr.Store(&msg)
		return err
	}
	serve := func() error {
		l.stats.connects.Add(1)
		l.online.Store(true)
		l.log.Info("broker connected", "broker", l.cfg.BrokerURL)
		if l.cfg.OnConnect != nil { // it may Publish, which needs the link online
			l.wg.Add(1)
			go func() { defer l.wg.Done(); l.cfg.OnConnect() }()
		}
		if l.plain != "" {
			l.log.Warn("broker connection is plaintext: "+l.plain+"; use ssl:// with a CA file", "broker", l.cfg.BrokerURL)
		}
		lostErr := l.serve(ctx, client)
		l.online.Store(false)
		if lostErr == nil { // ctx done: say goodbye
			if client.IsConnectionOpen() {
				_ = l.wait(client.Publish(StatusTopic(l.cfg.DeviceID), 1, true, l.status("offline")))
			}
			client.Disconnect(250)
			return nil
		}
		l.log.Warn("broker connection lost", "err", lostErr)
		client.Disconnect(0)
		return lostErr
	}
	Reconnect(ctx, l.log, l.cfg.BrokerURL, &Backoff{Min: l.cfg.BackoffMin, Max: l.cfg.BackoffMax}, connect, serve)
	return nil
}

// connect makes one connection attempt, subscribes and publishes the birth message.
func (l *Link) connect(c mqtt.Client) error {
	if err := Dial(c, l.cfg.Timeout); err != nil {
		return err
	}
	if err := l.wait(c.Subscribe(ResultTopic(l.cfg.DeviceID), 1, l.onMessage)); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("sync: subscribe to results: %w", err)
	}
	for _, s := range l.cfg.Subscriptions {
		h := s.Handle
		if err := l.wait(c.Subscribe(s.Filter, 1, func(_ mqtt.Client, m mqtt.Message) { h(m.Topic(), m.Payload()) })); err != nil {
			c.Disconnect(0)
			return fmt.Errorf("sync: subscribe to %s: %w", s.Filter, err)
		}
	}
	if err := l.wait(c.Publish(StatusTopic(l.cfg.DeviceID), 1, true, l.status("online"))); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("sync: birth message: %w", err)
	}
	return nil
}

// Matches reports whether an MQTT topic matches a filter with + and # wildcards.
func Matches(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(t) || (level != "+" && level != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

// onMessage runs on paho's goroutines (OrderMatters is off, so it may block briefly).
func (l *Link) onMessage(_ mqtt.Client, m mqtt.Message) {
	// A message of an extra subscription queued for the persistent session can arrive
	// before the subscription's own handler is set up.
	for _, s := range l.cfg.Subscriptions {
		if Matches(s.Filter, m.Topic()) {
			s.Handle(m.Topic(), m.Payload())
			return
		}
	}
	t := time.NewTimer(l.cfg.Timeout)
	defer t.Stop()
	select {
	case l.results <- m:
	case <-t.C:
		l.stats.ignored.Add(1)
		l.log.Warn("result queue full; dropping a result (the request will be resent)", "topic", m.Topic())
	}
}

// serve runs one connection until ctx is done (nil) or the connection is lost.
func (l *Link) serve(ctx context.Context, c mqtt.Client) error {
	// Everything unanswered goes out again on a new connection; the entries stay known
	// so a late result for them still finishes them.
	l.mu.Lock()
	for _, f := range l.inflight {
		f.sent = time.Time{}
	}
	l.mu.Unlock()
	l.drain(c, time.Now())

	tick := time.NewTicker(min(time.Second, l.cfg.ResendAfter/2))
	defer tick.Stop()
	var hb <-chan time.Time
	if l.cfg.Heartbeat > 0 {
		t := time.NewTicker(l.cfg.Heartbeat)
		defer t.Stop()
		hb = t.C
		l.heartbeat(c)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-l.lost:
			if err == nil {
				err = errors.New("sync: connection closed")
			}
			return err
		case m := <-l.results:
			l.handleResults(ctx, m)
			l.drain(c, time.Now())
		case seq := <-l.failed:
			l.mu.Lock()
			if f, ok := l.inflight[seq]; ok {
				f.sent = time.Time{}
			}
			l.mu.Unlock()
		case <-l.kick:
			l.drain(c, time.Now())
		case now := <-tick.C:
			if !c.IsConnectionOpen() {
				continue // the lost handler reports it
			}
			l.drain(c, now)
		case <-hb:
			l.heartbeat(c)
		}
	}
}

// drain publishes outbox entries that are not in flight, up to the window, and resends
// entries whose result is overdue.
func (l *Link) drain(c mqtt.Client, now time.Time) {
	if !c.IsConnectionOpen() {
		return
	}
	l.mu.Lock()
	var resend []uint64
	for seq, f := range l.inflight {
		if f.sent.IsZero() || now.Sub(f.sent) >= l.cfg.ResendAfter {
			resend = append(resend, seq)
		}
	}
	room := l.cfg.Window - len(l.inflight)
	l.mu.Unlock()

	var batch []Pending
	if len(resend) > 0 {
		sort.Slice(resend, func(i, j int) bool { return resend[i] < resend[j] })
		// Re-read them: an entry acknowledged by someone else meanwhile is gone.
		all, err := l.cfg.Outbox.Pending(len(resend), func(seq uint64) bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			f, ok := l.inflight[seq]
			return !ok || !(f.sent.IsZero() || now.Sub(f.sent) >= l.cfg.ResendAfter)
		})
		if err != nil {
			l.log.Error("read outbox", "err", err)
			return
		}
		found := make(map[uint64]bool, len(all))
		for _, p := range all {
			found[p.Seq] = true
		}
		l.mu.Lock()
		for _, seq := range resend {
			if !found[seq] { // finished elsewhere (the sale engine acknowledged it)
				l.forget(seq)
			}
		}
		l.mu.Unlock()
		if len(all) > 0 {
			l.log.Debug("resending unanswered requests", "count", len(all))
			l.stats.resent.Add(uint64(len(all)))
		}
		batch = all
	}
	// A nearly full window is refilled in steps of a quarter, so the cloud gets requests
	// in bursts it can commit together instead of one fsync for every freed slot.
	if room > 0 {
		fresh, err := l.cfg.Outbox.Pending(room, func(seq uint64) bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			_, ok := l.inflight[seq]
			return ok || l.acking[seq]
		})
		if err != nil {
			l.log.Error("read outbox", "err", err)
			return
		}
		batch = append(batch, fresh...)
	}
	if len(batch) == 0 {
		return
	}
	type item struct {
		seq  uint64
		kind string
		data []byte
	}
	items := make([]item, 0, len(batch))
	for _, p := range batch {
		var m OutboxMessage
		if err := json.Unmarshal(p.Data, &m); err != nil || m.Key == "" {
			l.log.Error("skipping unreadable outbox entry", "seq", p.Seq, "err", err)
			continue
		}
		if _, err := UpTopic(l.cfg.DeviceID, m.Kind); err != nil {
			l.log.Error("skipping outbox entry", "seq", p.Seq, "err", err)
			continue
		}
		l.mu.Lock()
		fk := flightKey(m.Kind, m.Key)
		if old, ok := l.bykey[fk]; ok && old != p.Seq {
			delete(l.inflight, old) // the same message queued twice: the newest entry carries it
		}
		l.inflight[p.Seq] = &flight{key: fk, sent: now}
		l.bykey[fk] = p.Seq
		l.mu.Unlock()
		items = append(items, item{p.Seq, m.Kind, m.Payload})
	}
	type sent struct {
		seqs []uint64
		tok  mqtt.Token
	}
	var toks []sent
	// Consecutive entries go out together as a Bundle of up to Config.Bundle items that
	// fits MaxPayload; an entry alone goes to its own kind's topic.
	for len(items) > 0 {
		if !c.IsConnectionOpen() {
			// The rest goes out on the next connection (or after ResendAfter).
			l.mu.Lock()
			for _, it := range items {
				if f, ok := l.inflight[it.seq]; ok {
					f.sent = time.Time{}
				}
			}
			l.mu.Unlock()
			break
		}
		n, size := 1, len(items[0].data)
		for n < len(items) && n < l.cfg.Bundle && size+len(items[n].data)+bundleOverhead(n+1) <= MaxPayload {
			size += len(items[n].data)
			n++
		}
		group := items[:n]
		items = items[n:]
		seqs := make([]uint64, n)
		for i, it := range group {
			seqs[i] = it.seq
		}
		var topic string
		var payload []byte
		if n == 1 {
			topic, _ = UpTopic(l.cfg.DeviceID, group[0].kind)
			payload = group[0].data
		} else {
			bis := make([]BundleItem, n)
			for i, it := range group {
				bis[i] = BundleItem{Kind: it.kind, Payload: it.data}
			}
			raw, err := EncodeBundle(l.cfg.DeviceID, bis)
			if err != nil { // cannot happen within the bounds above; send them one by one
				l.log.Error("bundle", "err", err)
				for _, it := range group {
					t, _ := UpTopic(l.cfg.DeviceID, it.kind)
					toks = append(toks, sent{[]uint64{it.seq}, c.Publish(t, 1, false, it.data)})
				}
				continue
			}
			topic, payload = BundleTopic(l.cfg.DeviceID), raw
		}
		toks = append(toks, sent{seqs, c.Publish(topic, 1, false, payload)})
	}
	var published uint64
	for _, s := range toks {
		published += uint64(len(s.seqs))
	}
	l.stats.published.Add(published)
	l.stats.publishes.Add(uint64(len(toks)))
	// PUBACKs are awaited off the loop so results keep flowing; a publish the broker
	// did not take is due again at once (and paho resends it itself on reconnect).
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		deadline := time.Now().Add(l.cfg.Timeout)
		for _, s := range toks {
			if !s.tok.WaitTimeout(time.Until(deadline)) || s.tok.Error() != nil {
				l.log.Debug("publish not acknowledged by broker; will resend", "entries", len(s.seqs), "err", s.tok.Error())
				for _, seq := range s.seqs {
					select {
					case l.failed <- seq:
					default: // the resend timer catches it
					}
				}
			}
		}
	}()
}

// forget drops seq from the in-flight set; l.mu must be held.
func (l *Link) forget(seq uint64) {
	if f, ok := l.inflight[seq]; ok {
		if l.bykey[f.key] == seq {
			delete(l.bykey, f.key)
		}
		delete(l.inflight, seq)
	}
}

// handleResults applies m and every other result already waiting, then acknowledges
// their outbox entries in one call.
func (l *Link) handleResults(ctx context.Context, m mqtt.Message) {
	var rs []PaymentResult
	add := func(m mqtt.Message) {
		if m.Topic() != ResultTopic(l.cfg.DeviceID) {
			l.stats.ignored.Add(1)
			l.log.Warn("ignoring result on a foreign topic", "topic", m.Topic())
			return
		}
		got, errs := DecodeResults(m.Payload())
		for _, err := range errs {
			l.stats.ignored.Add(1)
			if errors.Is(err, ErrInvalidResult) {
				l.log.Warn("ignoring invalid result", "topic", m.Topic(), "err", err)
				continue
			}
			l.log.Warn("ignoring malformed result", "topic", m.Topic(), "bytes", len(m.Payload()), "err", err)
		}
		rs = append(rs, got...)
	}
	add(m)
	for len(rs) < 4*l.cfg.Window {
		select {
		case m := <-l.results:
			add(m)
			continue
		default:
		}
		break
	}
	if len(rs) == 0 {
		return
	}
	l.stats.results.Add(uint64(len(rs)))
	if l.cfg.OnResults != nil {
		// Applied off this loop by the applier, many groups per call, so the window
		// refills while the device's store syncs. The answered entries leave the
		// window now and are not read from the outbox again while they are applied.
		job := applyJob{rs: rs}
		l.mu.Lock()
		for _, r := range rs {
			seq, ok := l.bykey[flightKey(r.Kind, r.Key)]
			if !ok {
				continue // a duplicate, or a result for an entry we never sent in this run
			}
			l.forget(seq)
			l.acking[seq] = true
			job.seqs = append(job.seqs, seq)
		}
		l.mu.Unlock()
		select {
		case l.applyq <- job:
		case <-ctx.Done():
		}
		return
	}
	for _, r := range rs {
		l.cfg.OnResult(ctx, r)
	}
	if ctx.Err() != nil {
		return // the callbacks may have been cut short: leave the entries in the outbox
	}
	var seqs []uint64
	_, acks := l.cfg.Outbox.(Acker)
	l.mu.Lock()
	for _, r := range rs {
		seq, ok := l.bykey[flightKey(r.Kind, r.Key)]
		if !ok {
			continue // a duplicate, or a result for an entry we never sent in this run
		}
		l.forget(seq)
		if acks {
			seqs = append(seqs, seq)
			l.acking[seq] = true // not read again from the outbox while the ack is pending
		}
	}
	l.mu.Unlock()
	if len(seqs) > 0 {
		select {
		case l.ackq <- seqs:
		case <-ctx.Done():
		}
	}
}

// acker marks answered entries synced off the link's loop, so the window refills
// while bbolt syncs: every batch that queued up during one fsync goes into the next
// transaction (group commit).
// applyJob is a group of results and the outbox entries they answer.
type applyJob struct {
	rs   []PaymentResult
	seqs []uint64
}

// applier hands results to Config.OnResults off the link's loop, joining every group
// that queued up meanwhile into one call (one store transaction on the device: group
// commit). When OnResults fails, the entries become sendable again and are resent.
func (l *Link) applier(ctx context.Context) {
	_, acks := l.cfg.Outbox.(Acker)
	for {
		var job applyJob
		select {
		case <-ctx.Done():
			return
		case job = <-l.applyq:
		}
	more:
		for {
			select {
			case j := <-l.applyq:
				job.rs = append(job.rs, j.rs...)
				job.seqs = append(job.seqs, j.seqs...)
			default:
				break more
			}
		}
		err := l.cfg.OnResults(ctx, job.rs)
		if err == nil && ctx.Err() == nil && acks && len(job.seqs) > 0 {
			select {
			case l.ackq <- job.seqs: // the acker marks them synced and releases them
				continue
			case <-ctx.Done():
			}
		}
		if err != nil && ctx.Err() == nil {
			l.log.Error("results not applied; the requests will be resent", "count", len(job.rs), "err", err)
		}
		l.mu.Lock()
		for _, seq := range job.seqs {
			delete(l.acking, seq)
		}
		l.mu.Unlock()
		l.Kick()
	}
}

func (l *Link) acker(ctx context.Context, a Acker) {
	for {
		var seqs []uint64
		select {
		case <-ctx.Done():
			return
		case seqs = <-l.ackq:
		}
	more:
		for {
			select {
			case more := <-l.ackq:
				seqs = append(seqs, more...)
			default:
				break more
			}
		}
		err := a.Ack(seqs...)
		if err != nil {
			// Not lost: the entries stay in the outbox, are sent again and answered
			// from the cloud's ledger.
			l.log.Error("mark entries synced", "count", len(seqs), "err", err)
		} else {
			l.stats.acked.Add(uint64(len(seqs)))
		}
		l.mu.Lock()
		for _, seq := range seqs {
			delete(l.acking, seq)
		}
		l.mu.Unlock()
		l.Kick()
	}
}
