package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
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
	ClientID  string // default "posgw-" + random
	Group     string // shared subscription group; default "posgw"
	Ledger    *Ledger
	Rules     Rules
	// Batch bounds how many messages are handled in one ledger transaction; default 512.
	Batch int
	// Linger is how long a batch waits for one more message before its transaction
	// while messages are streaming in; default 300µs, negative: never. It trades that
	// much latency under load for fewer fsyncs; a lone message never waits.
	Linger  time.Duration
	Timeout time.Duration // bound of every wait for the broker; default 10s
	Log     *slog.Logger
}

// Gateway is a running posgw.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	tls   *tls.Config
	reqs  chan mqtt.Message
	stats gwStats
	wg    stdsync.WaitGroup // PUBACK waiters
	ready atomic.Bool       // subscribed on the current connection
}

// Ready reports whether the gateway is connected and subscribed.
func (g *Gateway) Ready() bool { return g.ready.Load() }

type gwStats struct {
	decided, replayed, answered, ignored atomic.Uint64
}

// Stats are a gateway's counters since it started.
type Stats struct {
	Decided  uint64 // messages that changed the ledger for the first time (new keys, reversals)
	Replayed uint64 // messages answered from the ledger without a new decision
	Answered uint64 // results published
	Ignored  uint64 // malformed, invalid or foreign messages dropped
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	return Stats{Decided: g.stats.decided.Load(), Replayed: g.stats.replayed.Load(), Answered: g.stats.answered.Load(), Ignored: g.stats.ignored.Load()}
}

// New returns a Gateway; start it with Run.
func New(cfg Config) (*Gateway, error) {
	if cfg.BrokerURL == "" || cfg.Ledger == nil {
		return nil, fmt.Errorf("gateway: BrokerURL and Ledger are required")
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
	if cfg.Linger == 0 {
		cfg.Linger = 300 * time.Microsecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tc, err := wsync.TLSConfig(cfg.TLS, cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &Gateway{cfg: cfg, log: cfg.Log, tls: tc, reqs: make(chan mqtt.Message, 2*cfg.Batch)}, nil
}

// Filters are the shared-subscription filters the gateway subscribes to.
func (g *Gateway) Filters() map[string]byte {
	m := map[string]byte{}
	for _, f := range wsync.CloudFilters() {
		m["$share/"+g.cfg.Group+"/"+f] = 1
	}
	return m
}

// Run serves until ctx is done; a cancelled context returns nil.
func (g *Gateway) Run(ctx context.Context) error {
	filters := g.Filters()
	opts := mqtt.NewClientOptions().
		AddBroker(g.cfg.BrokerURL).
		SetClientID(g.cfg.ClientID).
		SetCleanSession(false).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(g.cfg.Timeout).
		SetWriteTimeout(g.cfg.Timeout).
		SetDefaultPublishHandler(g.onMessage)
	if g.cfg.Username != "" {
		opts.SetUsername(g.cfg.Username).SetPassword(g.cfg.Password)
	}
	if g.tls != nil {
		opts.SetTLSConfig(g.tls)
	}
	if open := wsync.OpenConnection(g.cfg.BrokerURL, g.tls); open != nil {
		opts.SetCustomOpenConnectionFn(open)
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		go func() { // paho's handlers must not block
			t := c.SubscribeMultiple(filters, g.onMessage)
			if !t.WaitTimeout(g.cfg.Timeout) || t.Error() != nil {
				g.log.Error("subscribe failed; reconnecting", "err", t.Error())
				c.Disconnect(0)
				return
			}
			g.ready.Store(true)
			g.log.Info("gateway subscribed", "group", g.cfg.Group, "broker", g.cfg.BrokerURL)
		}()
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		g.ready.Store(false)
		g.log.Warn("broker connection lost", "err", err)
	})
	client := mqtt.NewClient(opts)
	client.Connect() // with ConnectRetry the token completes only once connected
	defer client.Disconnect(250)
	defer g.wg.Wait()
	batch := make([]mqtt.Message, 0, g.cfg.Batch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-g.reqs:
			batch = g.collect(append(batch[:0], m), len(batch) > 1)
			g.handleBatch(client, batch)
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

// job is one parsed device message.
type job struct {
	kind, device, key string
	msg               any
	res               wsync.PaymentResult
	answer            bool
}

// parse decodes and checks one message, which may be a bundle of several; an
// ignored message or bundle item is logged once and left out.
func (g *Gateway) parse(m mqtt.Message, jobs []*job) []*job {
	device, err := wsync.DeviceFromTopic(m.Topic())
	if err == nil && m.Topic() == wsync.BundleTopic(device) {
		claimed, msgs, errs := wsync.DecodeBundle(m.Payload())
		for _, err := range errs {
			g.stats.ignored.Add(1)
			g.log.Warn("ignoring malformed bundle or bundle item", "device", device, "bytes", len(m.Payload()), "err", err)
		}
		if len(msgs) > 0 && claimed != device {
			g.stats.ignored.Add(uint64(len(msgs)))
			g.log.Warn("ignoring bundle whose device differs from its topic", "topic_device", device, "items", len(msgs))
			return jobs
		}
		for _, u := range msgs {
			jobs = append(jobs, &job{kind: u.Kind, device: device, key: u.Key, msg: u.Msg})
		}
		return jobs
	}
	kind, err := wsync.KindFromTopic(m.Topic())
	if err != nil {
		g.stats.ignored.Add(1)
		g.log.Warn("ignoring message on unexpected topic", "topic", m.Topic())
		return jobs
	}
	msg, key, claimed, err := wsync.DecodeUp(kind, m.Payload())
	if err != nil {
		g.stats.ignored.Add(1)
		g.log.Warn("ignoring malformed message", "device", device, "kind", kind, "bytes", len(m.Payload()), "err", err)
		return jobs
	}
	if claimed != device {
		g.stats.ignored.Add(1)
		g.log.Warn("ignoring message whose device differs from its topic", "topic_device", device, "kind", kind)
		return jobs
	}
	return append(jobs, &job{kind: kind, device: device, key: key, msg: msg})
}

// handleBatch applies every message in one ledger transaction, then publishes the
// answers. When the transaction fails nothing is answered: the devices resend.
func (g *Gateway) handleBatch(c mqtt.Client, batch []mqtt.Message) {
	jobs := make([]*job, 0, len(batch))
	for _, m := range batch {
		jobs = g.parse(m, jobs)
	}
	if len(jobs) == 0 {
		return
	}
	now := time.Now().UTC()
	var decided, replayed uint64
	err := g.cfg.Ledger.Update(func(tx *Tx) error {
		decided, replayed = 0, 0
		for _, j := range jobs {
			fresh, err := g.apply(tx, j, now)
			if err != nil {
				return err
			}
			if fresh {
				decided++
			} else {
				replayed++
			}
		}
		return nil
	})
	if err != nil {
		g.log.Error("ledger write failed; not answering (the devices resend)", "messages", len(jobs), "err", err)
		return
	}
	g.stats.decided.Add(decided)
	g.stats.replayed.Add(replayed)
	// One message per device answers everything this batch decided for it: a single
	// PaymentResult, or a ResultBatch of up to MaxBatchResults.
	var (
		devices []string
		answers = map[string][]wsync.PaymentResult{}
	)
	for _, j := range jobs {
		if !j.answer {
			continue
		}
		j.res.V, j.res.Key, j.res.Kind = wsync.Version, j.key, j.kind
		if _, ok := answers[j.device]; !ok {
			devices = append(devices, j.device)
		}
		answers[j.device] = append(answers[j.device], j.res)
	}
	toks := make([]mqtt.Token, 0, len(devices))
	counts := make([]int, 0, len(devices))
	for _, d := range devices {
		rs := answers[d]
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
}

// apply handles one message inside tx and fills j.res. It reports whether the ledger
// learnt something new (false: a replay answered from the ledger or a query).
func (g *Gateway) apply(tx *Tx, j *job, now time.Time) (bool, error) {
	j.answer = true
	j.res.DecidedAt = now
	switch m := j.msg.(type) {
	case *wsync.PaymentRequest:
		return g.applyPayment(tx, j, m, now)
	case *wsync.QueryRequest:
		e, ok, err := tx.Entry(m.Key)
		if err != nil {
			return false, err
		}
		if !ok || e.Device != j.device || !e.IsSale() {
			j.res.Status = wsync.ResultUnknown
			return false, nil
		}
		j.res.Status, j.res.Reason, j.res.DecidedAt = e.Status, e.Reason, e.DecidedAt
		return false, nil
	case *wsync.ReversalRequest:
		return g.applyReversal(tx, j, m, now)
	case *wsync.RefundRequest:
		return g.applyRefund(tx, j, m, now)
	case *wsync.AttemptRecord:
		j.res.Status = wsync.ResultRecorded
		if _, ok, err := tx.Attempt(m.Key); err != nil || ok {
			return false, err
		}
		g.log.Info("attempt recorded", "key", m.Key, "device", j.device, "outcome", m.Outcome)
		return true, tx.PutAttempt(Attempt{
			Key: m.Key, Device: m.Device, AmountMinor: m.AmountMinor, Currency: m.Currency, Kind: m.Kind,
			Scheme: m.Scheme, MaskedCode: paycode.Mask(m.MaskedCode), Outcome: m.Outcome, Reason: m.Reason,
			CreatedAt: m.CreatedAt, RecordedAt: now,
		})
	case *wsync.BatchClose:
		return g.applyBatch(tx, j, m, now)
	}
	return false, fmt.Errorf("gateway: no handler for %T", j.msg)
}

func (g *Gateway) applyPayment(tx *Tx, j *job, req *wsync.PaymentRequest, now time.Time) (bool, error) {
	e, seen, err := tx.Entry(req.Key)
	if err != nil {
		return false, err
	}
	if seen && (e.Device != j.device || !e.IsSale()) {
		// Never answer with another device's (or a refund's) record.
		j.res.Status, j.res.Reason = wsync.ResultDeclined, "idempotency key already used"
		g.log.Warn("payment key collides with another record", "key", req.Key, "device", j.device)
		return false, nil
	}
	if seen {
		e.Requests++
		if err := tx.PutEntry(e); err != nil {
			return false, err
		}
		g.log.Debug("duplicate request answered from the ledger", "key", req.Key, "device", j.device, "status", e.Status)
	} else {
		status, reason := g.cfg.Rules.Decide(*req)
		e = Entry{
			Key: req.Key, Type: TypeSale, Device: j.device, AmountMinor: req.AmountMinor, Currency: req.Currency,
			Scheme: req.Scheme, MaskedCode: paycode.Mask(req.Code), Status: status, Reason: reason,
			CreatedAt: req.CreatedAt.UTC(), DecidedAt: now, Requests: 1,
		}
		if err := tx.PutEntry(e); err != nil {
			return false, err
		}
		g.log.Info("payment decided", "key", req.Key, "device", j.device, "amount_minor", req.AmountMinor,
			"currency", req.Currency, "scheme", req.Scheme, "code", e.MaskedCode, "status", e.Status)
	}
	j.res.Status, j.res.Reason, j.res.DecidedAt = e.Status, e.Reason, e.DecidedAt
	return !seen, nil
}

func (g *Gateway) applyReversal(tx *Tx, j *job, m *wsync.ReversalRequest, now time.Time) (bool, error) {
	e, ok, err := tx.Entry(m.Key)
	if err != nil {
		return false, err
	}
	j.res.Status = wsync.ResultReversed
	switch {
	case !ok:
		// Never seen: remember the key as reversed so a late request with it is refused.
		e = Entry{Key: m.Key, Type: TypeSale, Device: j.device, AmountMinor: m.AmountMinor, Currency: m.Currency,
			Status: wsync.ResultReversed, Reason: "reversed before the payment request arrived",
			DecidedAt: now, ReversedAt: now, CreatedAt: m.CreatedAt.UTC()}
		j.res.Reason = "no payment with this key; recorded as reversed"
		g.log.Info("reversal of an unseen key recorded", "key", m.Key, "device", j.device)
		return true, tx.PutEntry(e)
	case e.Device != j.device || !e.IsSale():
		j.res.Status, j.res.Reason = wsync.ResultDeclined, "not a sale of this device"
		return false, nil
	case e.Status == wsync.ResultReversed:
		j.res.Reason = "already reversed"
		return false, nil
	case e.Status == wsync.ResultDeclined:
		j.res.Reason = "the payment was declined; nothing was charged"
		return false, nil
	case e.RefundedMinor > 0:
		j.res.Status, j.res.Reason = wsync.ResultDeclined, "the payment was partly refunded; refund the rest instead"
		return false, nil
	}
	e.Status, e.Reason, e.ReversedAt = wsync.ResultReversed, "reversed by the device", now
	if m.Reason != "" {
		e.Reason = "reversed: " + m.Reason
	}
	g.log.Info("payment reversed", "key", m.Key, "device", j.device, "amount_minor", e.AmountMinor, "currency", e.Currency)
	return true, tx.PutEntry(e)
}

func (g *Gateway) applyRefund(tx *Tx, j *job, m *wsync.RefundRequest, now time.Time) (bool, error) {
	e, seen, err := tx.Entry(m.Key)
	if err != nil {
		return false, err
	}
	if seen {
		if e.Device != j.device || e.IsSale() || e.OriginalKey != m.OriginalKey {
			j.res.Status, j.res.Reason = wsync.ResultDeclined, "idempotency key already used"
			return false, nil
		}
		e.Requests++
		j.res.Status, j.res.Reason, j.res.DecidedAt = e.Status, e.Reason, e.DecidedAt
		return false, tx.PutEntry(e)
	}
	orig, ok, err := tx.Entry(m.OriginalKey)
	if err != nil {
		return false, err
	}
	status, reason := wsync.ResultApproved, ""
	switch {
	case !ok || orig.Device != j.device || !orig.IsSale():
		status, reason = wsync.ResultDeclined, "original sale unknown"
	case orig.Status != wsync.ResultApproved:
		status, reason = wsync.ResultDeclined, "original sale is "+orig.Status
	case orig.Currency != m.Currency:
		status, reason = wsync.ResultDeclined, "currency differs from the original sale"
	case m.AmountMinor > orig.AmountMinor-orig.RefundedMinor:
		status, reason = wsync.ResultDeclined, fmt.Sprintf("refund exceeds the refundable rest of %d minor units", orig.AmountMinor-orig.RefundedMinor)
	}
	if status == wsync.ResultApproved {
		orig.RefundedMinor += m.AmountMinor
		if err := tx.PutEntry(orig); err != nil {
			return false, err
		}
	}
	e = Entry{Key: m.Key, Type: TypeRefund, Device: j.device, AmountMinor: m.AmountMinor, Currency: m.Currency,
		Scheme: orig.Scheme, Status: status, Reason: reason, CreatedAt: m.CreatedAt.UTC(), DecidedAt: now,
		Requests: 1, OriginalKey: m.OriginalKey}
	g.log.Info("refund decided", "key", m.Key, "original", m.OriginalKey, "device", j.device, "amount_minor", m.AmountMinor, "status", status)
	j.res.Status, j.res.Reason = status, reason
	return true, tx.PutEntry(e)
}

func (g *Gateway) applyBatch(tx *Tx, j *job, m *wsync.BatchClose, now time.Time) (bool, error) {
	if b, ok, err := tx.Batch(m.Key); err != nil || ok {
		if ok {
			if b.Device != j.device {
				j.res.Status, j.res.Reason = wsync.ResultDeclined, "idempotency key already used"
			} else {
				j.res.Status, j.res.Reason, j.res.DecidedAt = b.Status, b.Reason, b.RecordedAt
			}
		}
		return false, err
	}
	// The ledger's view of the same window, from the device's own created_at.
	type sk = [2]string
	ours := map[sk]*BatchLine{}
	line := func(scheme, cur string) *BatchLine {
		l := ours[sk{scheme, cur}]
		if l == nil {
			l = &BatchLine{Scheme: scheme, Currency: cur}
			ours[sk{scheme, cur}] = l
		}
		return l
	}
	err := tx.ForEach(func(e Entry) error {
		if e.Device != j.device || e.Status != wsync.ResultApproved || e.CreatedAt.Before(m.OpenedAt) || !e.CreatedAt.Before(m.ClosedAt) {
			return nil
		}
		l := line(e.Scheme, e.Currency)
		if e.IsSale() {
			l.SalesCount++
			l.SalesMinor += e.AmountMinor
		} else {
			l.RefundsCount++
			l.RefundsMinor += e.AmountMinor
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	theirs := map[sk]BatchLine{}
	lines := make([]BatchLine, 0, len(m.Totals))
	for _, t := range m.Totals {
		bl := BatchLine(t)
		theirs[sk{t.Scheme, t.Currency}] = bl
		lines = append(lines, bl)
	}
	var diffs []string
	keys := map[sk]bool{}
	for k := range ours {
		keys[k] = true
	}
	for k := range theirs {
		keys[k] = true
	}
	sorted := make([]sk, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(a, b int) bool {
		return sorted[a][0]+"/"+sorted[a][1] < sorted[b][0]+"/"+sorted[b][1]
	})
	for _, k := range sorted {
		var o BatchLine
		if p := ours[k]; p != nil {
			o = *p
		}
		t := theirs[k]
		o.Scheme, o.Currency, t.Scheme, t.Currency = "", "", "", ""
		if o != t {
			diffs = append(diffs, fmt.Sprintf("%s/%s: device %d sales %d, %d refunds %d; ledger %d sales %d, %d refunds %d",
				k[0], k[1], t.SalesCount, t.SalesMinor, t.RefundsCount, t.RefundsMinor, o.SalesCount, o.SalesMinor, o.RefundsCount, o.RefundsMinor))
		}
	}
	b := Batch{Key: m.Key, Device: j.device, OpenedAt: m.OpenedAt, ClosedAt: m.ClosedAt, Totals: lines, Status: wsync.ResultRecorded, RecordedAt: now}
	if len(diffs) > 0 {
		if len(diffs) > 4 {
			diffs = append(diffs[:4], fmt.Sprintf("and %d more", len(diffs)-4))
		}
		b.Status, b.Reason = wsync.ResultDeclined, "totals differ: "+strings.Join(diffs, "; ")
	}
	g.log.Info("batch reconciled", "key", m.Key, "device", j.device, "status", b.Status, "reason", b.Reason)
	j.res.Status, j.res.Reason, j.res.DecidedAt = b.Status, b.Reason, now
	return true, tx.PutBatch(b)
}
