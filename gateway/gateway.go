package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	stdsync "sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/paycode"
	wsync "github.com/walletless/walletless/sync"
)

// DefaultLimits are the per-currency approval limits in minor units.
var DefaultLimits = map[string]int64{
	"KRW": 1_000_000, // ₩1,000,000
	"JPY": 100_000,   // ¥100,000
	"CNY": 500_000,   // CN¥5,000.00
	"HKD": 500_000,   // HK$5,000.00
	"SGD": 100_000,   // S$1,000.00
	"THB": 3_000_000, // ฿30,000.00
	"USD": 100_000,   // US$1,000.00
	"EUR": 100_000,   // €1,000.00
}

// Rules are the gateway's decision rules.
type Rules struct {
	Limits map[string]int64 // per-currency limit in minor units; nil means DefaultLimits
	// MaxAge declines a payment request (not one stored offline) whose created_at is
	// more than MaxAge before the cloud sees it first; zero means DefaultMaxAge,
	// negative turns the rule off (see staleness in apply.go).
	MaxAge time.Duration
}

// Decide applies the rules to one request.
func (r Rules) Decide(req wsync.PaymentRequest) (status, reason string) {
	limits := r.Limits
	if limits == nil {
		limits = DefaultLimits
	}
	if _, ok := paycode.LookupCurrency(req.Currency); !ok {
		return wsync.ResultDeclined, "unknown currency " + req.Currency
	}
	limit, ok := limits[req.Currency]
	switch {
	case !ok:
		return wsync.ResultDeclined, "currency " + req.Currency + " is not accepted by this gateway"
	case req.Scheme == "":
		return wsync.ResultDeclined, "payment scheme not identified"
	case req.AmountMinor > limit:
		return wsync.ResultDeclined, fmt.Sprintf("amount exceeds the gateway limit of %d minor units", limit)
	}
	return wsync.ResultApproved, ""
}

// Config configures a Gateway.
type Config struct {
	BrokerURL string
	Username  string
	Password  string
	TLS       *tls.Config // nil for plain TCP unless the files below are set
	CAFile    string      // PEM bundle for the broker's certificate
	CertFile  string      // client certificate for mutual TLS
	KeyFile   string
	ClientID  string // default "posgw-" + 8 random hex digits; the session is clean, so it need not be stable
	Group     string // shared subscription group; default "posgw"
	// Applier decides and records messages. When nil, Ledger and Rules make a Local.
	Applier Applier
	// Ledger is the Store a Local decides on: a bbolt *Ledger or a *PGLedger.
	Ledger Store
	Rules  Rules
	// Batch bounds how many messages are handled in one ledger transaction; default 512.
	Batch int
	// Linger is how long a batch waits for one more message before its transaction
	// while messages are streaming in; default 300µs, negative: never. It trades that
	// much latency under load for fewer fsyncs; a lone message never waits.
	Linger  time.Duration
	Timeout time.Duration // bound of every wait for the broker; default 10s
	// KeepAlive is the MQTT keep-alive; default 30s.
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the wait between connection attempts, which
	// doubles after each failure with ±25% jitter (wsync.Jitter); defaults 500ms and 30s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	Log        *slog.Logger
}

// Gateway is a running posgw.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config
	applier Applier
	reqs    chan mqtt.Message
	lost    chan error
	stats   gwStats
	wg      stdsync.WaitGroup // PUBACK waiters
	ready   atomic.Bool       // subscribed on the current connection
	running atomic.Bool

	// Owned by Run's goroutine: the ledger failure burst in progress, and the wait
	// before giving unacknowledged requests back to the broker after one.
	ledgerDown    bool
	ledgerFailed  int
	ledgerBackoff wsync.Backoff
}

// errLedgerFailed ends a connection after a batch the ledger did not store: its
// requests stay unacknowledged, and a new connection gives them back (a persistent
// session redelivers them; a clean one drops them and the devices resend), instead of
// their filling the broker's in-flight window for this gateway for good.
var errLedgerFailed = errors.New("gateway: ledger failed; reconnecting to give the unacknowledged requests back to the broker")

// Ready reports whether the gateway is connected and subscribed.
func (g *Gateway) Ready() bool { return g.ready.Load() }

type gwStats struct {
	decided, replayed, answered, ignored, connects, unanswered atomic.Uint64
}

// Stats are a gateway's counters since it started.
type Stats struct {
	Decided    uint64 // messages that changed the ledger for the first time (new keys, reversals)
	Replayed   uint64 // messages answered from the ledger without a new decision
	Answered   uint64 // results published
	Ignored    uint64 // malformed, invalid or foreign messages dropped
	Unanswered uint64 // messages not answered because the ledger failed (the devices resend)
	Connects   uint64 // successful connections to the broker
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	return Stats{Decided: g.stats.decided.Load(), Replayed: g.stats.replayed.Load(), Answered: g.stats.answered.Load(),
		Ignored: g.stats.ignored.Load(), Unanswered: g.stats.unanswered.Load(), Connects: g.stats.connects.Load()}
}

// New returns a Gateway; start it with Run.
func New(cfg Config) (*Gateway, error) {
	if cfg.BrokerURL == "" || (cfg.Ledger == nil && cfg.Applier == nil) {
		return nil, fmt.Errorf("gateway: BrokerURL and a Ledger or an Applier are required")
	}
	if cfg.ClientID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ClientID = "posgw-" + hex.EncodeToString(b[:])
	}
	if cfg.Group == "" {
		cfg.Group = "posgw"
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 512
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
	if cfg.Linger == 0 {
		cfg.Linger = 300 * time.Microsecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := wsync.CheckTLSURL(cfg.BrokerURL, cfg.TLS, cfg.CAFile, cfg.CertFile, cfg.KeyFile); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	tc, err := wsync.TLSConfig(cfg.TLS, cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	a := cfg.Applier
	if a == nil {
		a = NewLocal(cfg.Ledger, cfg.Rules, cfg.Log)
	}
	return &Gateway{cfg: cfg, log: cfg.Log, tls: tc, applier: a,
		reqs: make(chan mqtt.Message, 2*cfg.Batch), lost: make(chan error, 1),
		ledgerBackoff: wsync.Backoff{Min: cfg.BackoffMin, Max: cfg.BackoffMax}}, nil
}

// Filters are the shared-subscription filters the gateway subscribes to.
func (g *Gateway) Filters() map[string]byte {
	m := map[string]byte{}
	for _, f := range wsync.CloudFilters() {
		m["$share/"+g.cfg.Group+"/"+f] = 1
	}
	return m
}

// Run serves until ctx is done, reconnecting with backoff and jitter whenever the
// connection fails and subscribing again on every connection. A cancelled context is
// a clean stop and returns nil. Run may be called once.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return fmt.Errorf("gateway: Run called twice")
	}
	opts := wsync.ClientOptions(wsync.Client{
		BrokerURL: g.cfg.BrokerURL, ClientID: g.cfg.ClientID, Username: g.cfg.Username, Password: g.cfg.Password,
		TLS: g.tls, KeepAlive: g.cfg.KeepAlive, Timeout: g.cfg.Timeout,
		Lost: g.lost, Down: func() { g.ready.Store(false) },
		OnMessage: g.onMessage,
		// A clean session: while no gateway runs, the broker queues nothing for it,
		// so it never redelivers requests that were answered long ago; the devices
		// resend what is still unanswered (docs/protocol.md, "The cloud's session").
		CleanSession: true,
	})
	// A request is acknowledged to the broker only once the ledger stored its answer
	// (handleBatch): a worker that dies or loses its ledger leaves it unacknowledged.
	opts.SetAutoAckDisabled(true)
	client := mqtt.NewClient(opts)
	defer g.wg.Wait() // PUBACK waiters are bounded by Timeout
	g.log.Info("gateway starting", "broker", g.cfg.BrokerURL, "group", g.cfg.Group, "client_id", g.cfg.ClientID)
	batch := make([]mqtt.Message, 0, g.cfg.Batch)
	connect := func() error {
		select { // a loss reported for an earlier connection is stale now
		case <-g.lost:
		default:
		}
		return g.connect(client)
	}
	serve := func() error {
		g.stats.connects.Add(1)
		g.ready.Store(true)
		g.log.Info("gateway subscribed", "group", g.cfg.Group, "broker", g.cfg.BrokerURL)
		lostErr := g.serve(ctx, client, batch)
		g.ready.Store(false)
		if lostErr == nil { // ctx done
			g.wg.Wait()
			client.Disconnect(250)
			return nil
		}
		if errors.Is(lostErr, errLedgerFailed) {
			client.Disconnect(250)
			d := g.ledgerBackoff.Next()
			g.log.Warn("ledger failed; reconnecting to the broker so it hands the unacknowledged requests out again", "in", d.Round(time.Millisecond))
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			return lostErr
		}
		g.log.Warn("broker connection lost; reconnecting", "err", lostErr)
		client.Disconnect(0)
		return lostErr
	}
	wsync.Reconnect(ctx, g.log, g.cfg.BrokerURL, &wsync.Backoff{Min: g.cfg.BackoffMin, Max: g.cfg.BackoffMax}, connect, serve)
	return nil
}

// connect makes one connection attempt and subscribes the shared filters, each wait
// bounded.
func (g *Gateway) connect(c mqtt.Client) error {
	if err := wsync.Dial(c, g.cfg.Timeout); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	st := c.SubscribeMultiple(g.Filters(), g.onMessage)
	if !st.WaitTimeout(g.cfg.Timeout) {
		c.Disconnect(0)
		return fmt.Errorf("gateway: subscribe: no answer from the broker within %s", g.cfg.Timeout)
	}
	if err := st.Error(); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("gateway: subscribe: %w", err)
	}
	if res, ok := st.(*mqtt.SubscribeToken); ok {
		for f, q := range res.Result() {
			if q == 0x80 {
				c.Disconnect(0)
				return fmt.Errorf("gateway: subscribe: the broker refused %s", f)
			}
		}
	}
	return nil
}

// serve handles requests on one connection until ctx is done (nil) or the connection
// is lost (its error).
func (g *Gateway) serve(ctx context.Context, c mqtt.Client, batch []mqtt.Message) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-g.lost:
			if err == nil {
				err = fmt.Errorf("gateway: connection lost")
			}
			return err
		case m := <-g.reqs:
			batch = g.collect(append(batch[:0], m), len(batch) > 1)
			if !g.handleBatch(ctx, c, batch) && ctx.Err() == nil {
				return errLedgerFailed
			}
		}
	}
}

// collect adds what is already queued to batch and, when messages are streaming in
// (the previous batch held more than one), keeps adding while they keep coming: until
// none arrived for Linger, the batch is full, or 8×Linger passed. Every message in a
// batch shares one fsync, so a short wait under load saves many; a lone sale does not
// wait.
func (g *Gateway) collect(batch []mqtt.Message, streaming bool) []mqtt.Message {
	for len(batch) < g.cfg.Batch {
		select {
		case m := <-g.reqs:
			batch = append(batch, m)
			continue
		default:
		}
		break
	}
	if g.cfg.Linger < 0 || (!streaming && len(batch) == 1) || len(batch) >= g.cfg.Batch {
		return batch
	}
	deadline := time.NewTimer(8 * g.cfg.Linger)
	defer deadline.Stop()
	idle := time.NewTimer(g.cfg.Linger)
	defer idle.Stop()
	for len(batch) < g.cfg.Batch {
		select {
		case m := <-g.reqs:
			batch = append(batch, m)
			continue
		default:
		}
		select {
		case m := <-g.reqs:
			batch = append(batch, m)
			if !idle.Stop() {
				<-idle.C
			}
			idle.Reset(g.cfg.Linger)
		case <-idle.C:
			return batch
		case <-deadline.C:
			return batch
		}
	}
	return batch
}

func (g *Gateway) onMessage(_ mqtt.Client, m mqtt.Message) {
	t := time.NewTimer(g.cfg.Timeout)
	defer t.Stop()
	select {
	case g.reqs <- m:
	case <-t.C:
		g.stats.ignored.Add(1)
		g.log.Warn("request queue full; dropping (the device resends)", "topic", m.Topic())
	}
}

// parse decodes and checks one message, which may be a bundle of several; an
// ignored message or bundle item is logged once and left out.
func (g *Gateway) parse(m mqtt.Message, msgs []Message) []Message {
	device, err := wsync.DeviceFromTopic(m.Topic())
	if err == nil && m.Topic() == wsync.BundleTopic(device) {
		claimed, items, errs := wsync.DecodeBundle(m.Payload())
		for _, err := range errs {
			g.stats.ignored.Add(1)
			g.log.Warn("ignoring malformed bundle or bundle item", "device", device, "bytes", len(m.Payload()), "err", err)
		}
		if len(items) > 0 && claimed != device {
			g.stats.ignored.Add(uint64(len(items)))
			g.log.Warn("ignoring bundle whose device differs from its topic", "topic_device", device, "items", len(items))
			return msgs
		}
		for _, u := range items {
			msgs = append(msgs, Message{Kind: u.Kind, Device: device, Key: u.Key, Msg: u.Msg})
		}
		return msgs
	}
	kind, err := wsync.KindFromTopic(m.Topic())
	if err != nil {
		g.stats.ignored.Add(1)
		g.log.Warn("ignoring message on unexpected topic", "topic", m.Topic())
		return msgs
	}
	msg, key, claimed, err := wsync.DecodeUp(kind, m.Payload())
	if err != nil {
		g.stats.ignored.Add(1)
		g.log.Warn("ignoring malformed message", "device", device, "kind", kind, "bytes", len(m.Payload()), "err", err)
		return msgs
	}
	if claimed != device {
		g.stats.ignored.Add(1)
		g.log.Warn("ignoring message whose device differs from its topic", "topic_device", device, "kind", kind)
		return msgs
	}
	return append(msgs, Message{Kind: kind, Device: device, Key: key, Msg: msg})
}

// handleBatch applies every message in one ledger transaction (the Applier's), then
// acknowledges the MQTT messages to the broker and publishes the answers. When the
// ledger fails nothing is acknowledged or answered: the devices resend. A batch of
// several messages that fails is tried again message by message, so that one message
// the ledger refuses does not hold the others back. A failure is logged once per
// burst of failures, and its end once. It reports whether every message was stored
// (or had nothing to store).
func (g *Gateway) handleBatch(ctx context.Context, c mqtt.Client, batch []mqtt.Message) bool {
	msgs := make([]Message, 0, len(batch))
	for _, m := range batch {
		msgs = g.parse(m, msgs)
	}
	if len(msgs) == 0 {
		ack(batch) // nothing to store: malformed or foreign, and logged
		return true
	}
	answers, err := g.applier.Apply(ctx, msgs)
	if err == nil && len(answers) != len(msgs) {
		err = fmt.Errorf("gateway: ledger gave %d answers for %d messages", len(answers), len(msgs))
	}
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		g.log.Debug("batch failed; trying its messages one by one", "messages", len(batch), "err", err)
		ok := true
		for i := range batch {
			ok = g.handleBatch(ctx, c, batch[i:i+1]) && ok
		}
		return ok
	}
	if err != nil {
		g.stats.unanswered.Add(uint64(len(msgs)))
		g.ledgerFailed++
		if !g.ledgerDown && ctx.Err() == nil {
			g.log.Error("ledger failed; not answering until it works again (the devices resend)", "messages", len(msgs), "err", err)
		}
		g.ledgerDown = true
		return false
	}
	if g.ledgerDown {
		g.log.Info("ledger works again", "failed_batches", g.ledgerFailed)
		g.ledgerDown, g.ledgerFailed = false, 0
		g.ledgerBackoff.Reset()
	}
	ack(batch)
	// One message per device answers everything this batch decided for it: a single
	// PaymentResult, or a ResultBatch of up to MaxBatchResults.
	var (
		devices          []string
		results          = map[string][]wsync.PaymentResult{}
		decided, replays int
	)
	for i, a := range answers {
		if a.Ignored != "" {
			g.stats.ignored.Add(1)
			g.log.Warn("ledger refused a message", "device", msgs[i].Device, "kind", msgs[i].Kind, "reason", a.Ignored)
			continue
		}
		if a.Fresh {
			decided++
			g.stats.decided.Add(1)
		} else {
			replays++
			g.stats.replayed.Add(1)
		}
		d := msgs[i].Device
		if _, ok := results[d]; !ok {
			devices = append(devices, d)
		}
		results[d] = append(results[d], a.Result)
	}
	g.log.Debug("batch answered", "messages", len(msgs), "decided", decided, "replayed", replays, "devices", len(devices))
	toks := make([]mqtt.Token, 0, len(devices))
	counts := make([]int, 0, len(devices))
	for _, d := range devices {
		rs := results[d]
		for len(rs) > 0 {
			n := min(len(rs), wsync.MaxBatchResults)
			var raw []byte
			if n == 1 {
				raw, _ = json.Marshal(rs[0])
			} else {
				raw, _ = json.Marshal(wsync.ResultBatch{V: wsync.Version, Results: rs[:n]})
			}
			toks = append(toks, c.Publish(wsync.ResultTopic(d), 1, false, raw))
			counts = append(counts, n)
			rs = rs[n:]
		}
	}
	// PUBACKs are awaited off the loop so the next batch's transaction overlaps them.
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		deadline := time.Now().Add(g.cfg.Timeout)
		for i, t := range toks {
			if !t.WaitTimeout(time.Until(deadline)) || t.Error() != nil {
				g.log.Warn("result publish not acknowledged; the device will resend", "results", counts[i], "err", t.Error())
				continue
			}
			g.stats.answered.Add(uint64(counts[i]))
		}
	}()
	return true
}

// ack acknowledges messages to the broker (PUBACK); after a lost connection the
// acknowledgements are dropped, and a persistent session redelivers the messages.
func ack(batch []mqtt.Message) {
	for _, m := range batch {
		m.Ack()
	}
}
