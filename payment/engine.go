package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/store"
)

// Errors returned to the API. Each is a client error with a clear message.
var (
	ErrNotFound    = errors.New("payment: no such sale")
	ErrBadAmount   = errors.New("payment: amount_minor must be a positive integer of minor units")
	ErrCurrency    = errors.New("payment: unknown ISO 4217 currency")
	ErrBusy        = errors.New("payment: another sale is waiting for a code; cancel it first")
	ErrNotWaiting  = errors.New("payment: sale can no longer be cancelled")
	ErrStopped     = errors.New("payment: engine is not running")
	errStoreFailed = errors.New("payment: could not store the sale")
)

// MaxAmountMinor caps a single sale (a typing error guard, not a business limit).
const MaxAmountMinor int64 = 1_000_000_000_000

// Store is what the engine needs from durable storage; *store.Store satisfies it.
type Store interface {
	PutSale(id string, outbox []byte, sale func(seq uint64) ([]byte, error)) (uint64, error)
	ResolveSale(id string, sale []byte, seq uint64) error
	GetSale(id string) ([]byte, error)
	ForEachSale(fn func(id string, sale []byte) error) error
}

// AuthRequest is what the engine asks the cloud to authorize. It carries the full
// code, so it only ever goes into the outbox and onto the wire, never into a log.
type AuthRequest struct {
	Key         string
	AmountMinor int64
	Currency    string
	Kind        string
	Scheme      string
	Operator    string
	Code        string
	MaskedCode  string
	CreatedAt   time.Time
}

// Result is the cloud's answer for one idempotency key.
type Result struct {
	Key      string
	Approved bool
	Reason   string
}

// Config wires an Engine to its neighbours.
type Config struct {
	Store Store
	// EncodeOutbox turns an authorization request into an outbox entry (the wire
	// format belongs to package sync; the daemon supplies this).
	EncodeOutbox func(AuthRequest) ([]byte, error)
	// Kick tells the cloud link that the outbox has a new entry. Must not block.
	Kick func()
	// Finished is called once a sale reaches approved or declined, e.g. to print a
	// receipt or light an LED. Must not block.
	Finished func(Sale)
	// AuthTimeout: a sale without a result after this long becomes in_doubt.
	AuthTimeout time.Duration
	// Identify recognises a scanned code; default paycode.Identify.
	Identify func(string) (paycode.Result, error)
	Now      func() time.Time
	Log      *slog.Logger
}

// Engine is the sale engine. Its methods are safe for concurrent use; they hand work
// to the goroutine running Run.
type Engine struct {
	cfg  Config
	log  *slog.Logger
	reqs chan func()

	// Owned by the Run goroutine.
	waiting *record            // the sale waiting for a code, if any
	pending map[string]pending // authorizing or in doubt, by id
}

type pending struct {
	rec      *record
	deadline time.Time
}

// New returns an engine; start it with Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.EncodeOutbox == nil {
		return nil, errors.New("payment: Store and EncodeOutbox are required")
	}
	if cfg.Kick == nil {
		cfg.Kick = func() {}
	}
	if cfg.Finished == nil {
		cfg.Finished = func(Sale) {}
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 30 * time.Second
	}
	if cfg.Identify == nil {
		cfg.Identify = paycode.Identify
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, log: cfg.Log, reqs: make(chan func(), 64), pending: make(map[string]pending)}, nil
}

// Run owns the sales until ctx is done; a cancelled context returns nil.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.recover(); err != nil {
		return err
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-e.reqs:
			f()
		case now := <-tick.C:
			e.expire(now)
		}
	}
}

// recover reloads unfinished sales after a restart.
func (e *Engine) recover() error {
	now := e.cfg.Now()
	return e.cfg.Store.ForEachSale(func(id string, raw []byte) error {
		var r record
		if err := json.Unmarshal(raw, &r); err != nil {
			e.log.Error("unreadable sale record; leaving it alone", "id", id, "err", err)
			return nil
		}
		switch r.Status {
		case StatusWaitingForCode:
			if e.waiting == nil || r.ID > e.waiting.ID {
				e.waiting = &r
			}
		case StatusAuthorizing, StatusInDoubt:
			e.pending[r.ID] = pending{rec: &r, deadline: now.Add(e.cfg.AuthTimeout)}
		}
		return nil
	})
}

// do runs f on the engine goroutine and waits for it.
func (e *Engine) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case e.reqs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Create starts a sale that waits for the customer's code.
func (e *Engine) Create(ctx context.Context, amountMinor int64, currency string) (Sale, error) {
	if amountMinor <= 0 || amountMinor > MaxAmountMinor {
		return Sale{}, ErrBadAmount
	}
	cur, ok := paycode.LookupCurrency(strings.ToUpper(currency))
	if !ok || len(currency) != 3 {
		return Sale{}, fmt.Errorf("%w: %q", ErrCurrency, currency)
	}
	var (
		out Sale
		err error
	)
	if derr := e.do(ctx, func() {
		if e.waiting != nil {
			err = fmt.Errorf("%w (sale %s)", ErrBusy, e.waiting.ID)
			return
		}
		now := e.cfg.Now().UTC()
		r := &record{Sale: Sale{ID: newID(now), Status: StatusWaitingForCode, AmountMinor: amountMinor, Currency: cur.Code, CreatedAt: now, UpdatedAt: now}}
		if err = e.put(r, nil); err != nil {
			return
		}
		e.waiting = r
		e.log.Info("sale created", "id", r.ID, "amount_minor", amountMinor, "currency", cur.Code)
		out = r.Sale
	}); derr != nil {
		return Sale{}, derr
	}
	return out, err
}

// Get returns a sale as last committed.
func (e *Engine) Get(id string) (Sale, error) {
	raw, err := e.cfg.Store.GetSale(id)
	if errors.Is(err, store.ErrNotFound) {
		return Sale{}, ErrNotFound
	}
	if err != nil {
		return Sale{}, fmt.Errorf("payment: %w", err)
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return Sale{}, fmt.Errorf("payment: stored sale %s: %w", id, err)
	}
	return r.Sale, nil
}

// Cancel cancels a sale that is still waiting for its code.
func (e *Engine) Cancel(ctx context.Context, id string) (Sale, error) {
	var (
		out Sale
		err error
	)
	if derr := e.do(ctx, func() {
		if e.waiting == nil || e.waiting.ID != id {
			if _, gerr := e.Get(id); gerr != nil {
				err = gerr
				return
			}
			err = ErrNotWaiting
			return
		}
		r := *e.waiting
		r.Status, r.Reason, r.UpdatedAt = StatusCancelled, "cancelled by the clerk", e.cfg.Now().UTC()
		if err = e.put(&r, nil); err != nil {
			return
		}
		e.waiting = nil
		e.log.Info("sale cancelled", "id", id)
		out = r.Sale
	}); derr != nil {
		return Sale{}, derr
	}
	return out, err
}

// Waiting returns the sale waiting for a code, if any.
func (e *Engine) Waiting(ctx context.Context) (Sale, bool) {
	var (
		out Sale
		ok  bool
	)
	_ = e.do(ctx, func() {
		if e.waiting != nil {
			out, ok = e.waiting.Sale, true
		}
	})
	return out, ok
}

// Scan hands the engine one scanned code. It returns the sale the code was applied
// to, or ok=false when no sale was waiting (the scan is then ignored).
func (e *Engine) Scan(ctx context.Context, code string) (sale Sale, ok bool, err error) {
	derr := e.do(ctx, func() {
		masked := paycode.Mask(code)
		if e.waiting == nil {
			e.log.Warn("scan ignored: no sale is waiting for a code", "code", masked)
			return
		}
		r := *e.waiting
		ok = true
		now := e.cfg.Now().UTC()
		r.UpdatedAt = now
		id, idErr := e.cfg.Identify(code)
		r.MaskedCode = masked
		if id.Masked != "" {
			r.MaskedCode = id.Masked
		}
		switch {
		case idErr != nil:
			r.Status, r.Reason = StatusDeclined, reason(idErr)
		case id.Kind != paycode.KindWallet && id.Kind != paycode.KindEMVCPM:
			r.Status, r.Reason = StatusDeclined, fmt.Sprintf("a %s code cannot pay a customer-presented sale", id.Kind)
		}
		if r.Status == StatusDeclined {
			r.Scheme, r.Operator = id.Scheme, id.Operator
			if err = e.put(&r, nil); err != nil {
				return
			}
			e.waiting = nil
			e.log.Info("sale declined locally", "id", r.ID, "code", r.MaskedCode, "reason", r.Reason)
			sale = r.Sale
			e.cfg.Finished(r.Sale)
			return
		}
		r.Status, r.Scheme, r.Operator = StatusAuthorizing, id.Scheme, id.Operator
		ob, encErr := e.cfg.EncodeOutbox(AuthRequest{
			Key: r.ID, AmountMinor: r.AmountMinor, Currency: r.Currency, Kind: string(id.Kind),
			Scheme: id.Scheme, Operator: id.Operator, Code: code, MaskedCode: r.MaskedCode, CreatedAt: r.CreatedAt,
		})
		if encErr != nil {
			err = fmt.Errorf("payment: encode request: %w", encErr)
			return
		}
		if err = e.put(&r, ob); err != nil {
			return
		}
		e.waiting = nil
		e.pending[r.ID] = pending{rec: &r, deadline: now.Add(e.cfg.AuthTimeout)}
		e.log.Info("sale authorizing", "id", r.ID, "scheme", r.Scheme, "code", r.MaskedCode)
		sale = r.Sale
		e.cfg.Kick()
	})
	if derr != nil {
		return Sale{}, false, derr
	}
	return sale, ok, err
}

// HandleResult applies the cloud's result for a key once it is durably stored.
// Results for unknown or already finished sales are ignored with a log line.
func (e *Engine) HandleResult(ctx context.Context, res Result) error {
	var err error
	if derr := e.do(ctx, func() {
		p, ok := e.pending[res.Key]
		if !ok {
			if s, gerr := e.Get(res.Key); gerr == nil && s.Status.Final() {
				e.log.Debug("duplicate result ignored", "id", res.Key)
			} else {
				e.log.Warn("result for an unknown sale ignored", "key", res.Key)
			}
			return
		}
		r := *p.rec
		r.UpdatedAt = e.cfg.Now().UTC()
		if res.Approved {
			r.Status, r.Reason = StatusApproved, ""
		} else {
			r.Status, r.Reason = StatusDeclined, res.Reason
			if r.Reason == "" {
				r.Reason = "declined by the payment operator"
			}
		}
		seq := r.OutboxSeq
		r.OutboxSeq = 0
		raw, merr := json.Marshal(&r)
		if merr != nil {
			err = merr
			return
		}
		if err = e.cfg.Store.ResolveSale(r.ID, raw, seq); err != nil {
			e.log.Error("could not store result; it will be applied when resent", "id", r.ID, "err", err)
			return
		}
		delete(e.pending, r.ID)
		e.log.Info("sale "+string(r.Status), "id", r.ID, "reason", r.Reason)
		e.cfg.Finished(r.Sale)
	}); derr != nil {
		return derr
	}
	return err
}

// expire moves overdue authorizing sales to in_doubt.
func (e *Engine) expire(now time.Time) {
	for id, p := range e.pending {
		if p.rec.Status != StatusAuthorizing || now.Before(p.deadline) {
			continue
		}
		r := *p.rec
		r.Status, r.Reason, r.UpdatedAt = StatusInDoubt, "no answer from the payment network yet; the request is kept and resent", now.UTC()
		raw, err := json.Marshal(&r)
		if err == nil {
			// The outbox entry stays: the request is resent with the same key.
			err = e.cfg.Store.ResolveSale(r.ID, raw, 0)
		}
		if err != nil {
			e.log.Error("could not mark sale in doubt", "id", id, "err", err)
			continue
		}
		e.pending[id] = pending{rec: &r, deadline: p.deadline}
		e.log.Warn("sale in doubt", "id", id)
	}
}

// put stores r (with an optional outbox entry, in the same transaction) and records
// the entry's sequence in r.
func (e *Engine) put(r *record, outbox []byte) error {
	rr := *r
	_, err := e.cfg.Store.PutSale(r.ID, outbox, func(seq uint64) ([]byte, error) {
		rr.OutboxSeq = seq
		return json.Marshal(&rr)
	})
	if err != nil {
		e.log.Error("store failed", "id", r.ID, "err", err)
		return fmt.Errorf("%w: %w", errStoreFailed, err)
	}
	*r = rr
	return nil
}

// reason turns an identification error into a clerk-facing reason.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), "paycode: ")
}
