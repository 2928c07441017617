package payment

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/store"
)

// MaxAmountMinor caps a single sale (a typing error guard, not a business limit).
const MaxAmountMinor int64 = 1_000_000_000_000

// Store is what the engine needs from durable storage; *store.Store satisfies it.
// Every state change is one Update: the record, its outbox entries, the in-doubt
// index and the batch totals commit together or not at all.
type Store interface {
	Update(fn func(*store.Tx) error) error
	View(fn func(*store.Tx) error) error
	PruneSales(limit int, decide func(id string, doc []byte) (del, stop bool)) (int, error)
	PruneCodes(before time.Time) (int, error)
}

// Config wires an Engine to its neighbours.
type Config struct {
	Store Store
	// EncodeOutbox turns a message into an outbox entry (the wire format belongs to
	// package sync; the daemon supplies this).
	EncodeOutbox func(Message) ([]byte, error)
	// Kick tells the cloud link that the outbox has a new entry. Must not block.
	Kick func()
	// Finished is called once the clerk-facing outcome of a sale is known (approved,
	// declined, refused, stored_offline, reversal_pending), e.g. to print a receipt.
	// Must not block.
	Finished func(Sale)
	// Presented is called with a merchant-presented sale once it is committed and its
	// QR can be shown or printed. Must not block.
	Presented func(Sale)
	// Online reports whether the cloud link is up; nil means always.
	Online func() bool
	// AuthTimeout: a sale without a result after this long becomes in_doubt and a
	// status query is queued. Default 30s.
	AuthTimeout time.Duration
	// QueryTimeout: an in-doubt sale the query has not settled after this long is
	// settled by its offline policy (reversal, or stored_offline under defer).
	// Default 30s.
	QueryTimeout time.Duration
	// MerchantCode is the merchant's EMVCo merchant-presented template (accounts, MCC,
	// country, name, city) for Present; nil disables the merchant-presented flow.
	MerchantCode *paycode.MPM
	// PresentTimeout: a merchant-presented sale not reported paid after this long
	// goes in doubt. Default 3 minutes (the customer opens an app and pays).
	PresentTimeout time.Duration
	// Offline are the offline policies per scheme; the zero value refuses everything.
	Offline Policies
	// CodeReuseWindow: a one-time code seen again within this window is refused.
	// Default 24h.
	CodeReuseWindow time.Duration
	// CodeKey is the device secret that keys the record of used one-time codes
	// (HMAC-SHA-256): without it an 18-digit code could be found again from its
	// plain hash by trying them all. Empty keeps the unkeyed hash (tests only).
	// Records of the unkeyed hash written before a key was set are still checked,
	// and are pruned with the rest after CodeReuseWindow.
	CodeKey []byte
	// PruneAfter: final, synced sales older than this are deleted; 0 keeps them.
	PruneAfter time.Duration
	// ClockSynced reports whether the wall clock can be trusted; default: after
	// ClockFloor.
	ClockSynced func(time.Time) bool
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
	// started is closed once Run has recovered the stored state.
	started chan struct{}
	// stopped is closed when Run returns: queued work will never run after it.
	stopped chan struct{}

	// Owned by the Run goroutine.
	waiting   *record                // the sale waiting for a code, if any
	pending   map[string]pending     // authorizing or in doubt, by id
	refunds   map[string]string      // pending refunds: id → batch id
	offline   map[string]offlineSale // stored_offline sales, for expiry
	exposure  exposure
	batch     *batchRecord
	lastPrune time.Time
	// While HandleResults applies a group of results in one transaction, batchTx is
	// that transaction and finishedQ collects the Finished callbacks, which run only
	// once it has committed.
	batchTx   *store.Tx
	finishedQ *[]Sale
}

type offlineSale struct {
	created time.Time
	maxAge  time.Duration
	flagged bool
}

type pending struct {
	status   Status
	deadline time.Time
	batch    string // the sale's batch id (empty: recorded by an older version)
}

// New returns an engine; start it with Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.EncodeOutbox == nil {
		return nil, errors.New("payment: Store and EncodeOutbox are required")
	}
	if err := cfg.Offline.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kick == nil {
		cfg.Kick = func() {}
	}
	if cfg.Finished == nil {
		cfg.Finished = func(Sale) {}
	}
	if cfg.Presented == nil {
		cfg.Presented = func(Sale) {}
	}
	if cfg.Online == nil {
		cfg.Online = func() bool { return true }
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 30 * time.Second
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 30 * time.Second
	}
	if cfg.PresentTimeout <= 0 {
		cfg.PresentTimeout = 3 * time.Minute
	}
	if cfg.CodeReuseWindow <= 0 {
		cfg.CodeReuseWindow = 24 * time.Hour
	}
	if cfg.ClockSynced == nil {
		cfg.ClockSynced = func(t time.Time) bool { return !t.Before(ClockFloor) }
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
	return &Engine{
		cfg: cfg, log: cfg.Log, reqs: make(chan func(), 64), started: make(chan struct{}), stopped: make(chan struct{}),
		pending: make(map[string]pending), refunds: make(map[string]string), offline: make(map[string]offlineSale),
		exposure: exposure{total: make(map[string]int64)},
	}, nil
}

// Run owns the sales until ctx is done; a cancelled context returns nil.
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.stopped)
	if err := e.recover(); err != nil {
		return err
	}
	close(e.started)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-e.reqs:
			f()
		case <-tick.C:
			e.tick(e.cfg.Now())
		}
	}
}

// recover reloads unfinished sales and refunds after a restart. It reads the in-doubt
// index, not every sale.
func (e *Engine) recover() error {
	now := e.cfg.Now()
	err := e.cfg.Store.View(func(tx *store.Tx) error {
		return tx.ForEachUnsettled(func(id, note string) error {
			if note == noteRefund {
				// Refunds wait for their result (nothing runs on a timer); the batch
				// close needs to know which are pending.
				f, err := loadRefund(tx, id)
				if err != nil {
					e.log.Error("unreadable refund record; leaving it alone", "id", id, "err", err)
					return nil
				}
				if f.Status == RefundPending {
					e.refunds[f.ID] = f.BatchID
				}
				return nil
			}
			raw, err := tx.Sale(id)
			if err != nil {
				e.log.Error("in-doubt index names a missing sale; ignoring", "id", id)
				return nil
			}
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
			case StatusAuthorizing:
				d := e.cfg.AuthTimeout
				if r.Flow == FlowMerchantPresented {
					d = e.cfg.PresentTimeout
				}
				e.pending[r.ID] = pending{status: r.Status, deadline: now.Add(d), batch: r.BatchID}
			case StatusInDoubt:
				e.pending[r.ID] = pending{status: r.Status, deadline: now.Add(e.cfg.QueryTimeout), batch: r.BatchID}
			case StatusStoredOffline:
				e.storedOffline(&r)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("payment: recover: %w", err)
	}
	return e.openBatch(now)
}

// view reads through the open result transaction when there is one (bbolt must not
// open a read transaction beside a write transaction on the same goroutine), else
// through a read transaction of its own.
func (e *Engine) view(fn func(tx *store.Tx) error) error {
	if e.batchTx != nil {
		return fn(e.batchTx)
	}
	return e.cfg.Store.View(fn)
}

// finished reports a sale's clerk-facing outcome, after the open result transaction
// commits when there is one.
func (e *Engine) finished(s Sale) {
	if e.finishedQ != nil {
		*e.finishedQ = append(*e.finishedQ, s)
		return
	}
	e.cfg.Finished(s)
}

// do runs f on the engine goroutine and waits for it. Once f is handed over, do
// waits until f has run or the engine has stopped (then f never runs), even if ctx
// ends meanwhile: f writes the caller's variables, so returning early would race.
func (e *Engine) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case e.reqs <- func() { f(); close(done) }:
	case <-e.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-e.stopped:
		select {
		case <-done: // f ran just before Run returned
			return nil
		default:
			return ErrStopped
		}
	}
}

// now returns the wall time in UTC and whether the clock is trusted.
func (e *Engine) now() (time.Time, bool) {
	t := e.cfg.Now()
	return t.UTC(), e.cfg.ClockSynced(t)
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
		now, synced := e.now()
		r := &record{Sale: Sale{ID: newID(now), Status: StatusWaitingForCode, AmountMinor: amountMinor, Currency: cur.Code,
			ClockUnsynced: !synced, BatchID: e.batch.ID, CreatedAt: now, UpdatedAt: now}}
		if err = e.commit(func(tx *store.Tx) error {
			n, err := tx.NextOrder()
			if err != nil {
				return err
			}
			r.Order = n
			return putSale(tx, r)
		}); err != nil {
			return
		}
		e.waiting = r
		e.log.Info("sale created", "id", r.ID, "amount_minor", amountMinor, "currency", cur.Code, "order", r.Order, "batch", r.BatchID)
		out = r.Sale
	}); derr != nil {
		return Sale{}, derr
	}
	return out, err
}

// Get returns a sale as last committed. It is called from any goroutine (the API), so
// it reads through a read transaction of its own, never through the Run goroutine's
// open result transaction (see view).
func (e *Engine) Get(id string) (Sale, error) {
	var r *record
	err := e.cfg.Store.View(func(tx *store.Tx) error {
		var err error
		r, err = loadSale(tx, id)
		return err
	})
	if err != nil {
		return Sale{}, err
	}
	return r.Sale, nil
}

func (e *Engine) load(id string) (*record, error) {
	var r *record
	err := e.view(func(tx *store.Tx) error {
		var err error
		r, err = loadSale(tx, id)
		return err
	})
	return r, err
}

func loadSale(tx *store.Tx, id string) (*record, error) {
	raw, err := tx.Sale(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no sale %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("payment: %w", err)
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("payment: stored sale %s: %w", id, err)
	}
	return &r, nil
}

// Cancel cancels a sale that is still waiting for its code, or voids a
// merchant-presented sale still waiting for payment (a reversal is queued, since the
// customer may already have paid).
func (e *Engine) Cancel(ctx context.Context, id string) (Sale, error) {
	var (
		out Sale
		err error
	)
	if derr := e.do(ctx, func() {
		if e.waiting == nil || e.waiting.ID != id {
			r, gerr := e.load(id)
			if gerr != nil {
				err = gerr
				return
			}
			if r.Flow == FlowMerchantPresented && (r.Status == StatusAuthorizing || r.Status == StatusInDoubt) {
				out, err = e.voidPresented(r)
				return
			}
			err = ErrNotWaiting
			return
		}
		r := *e.waiting
		r.Status, r.Reason = StatusCancelled, "cancelled by the clerk"
		r.UpdatedAt, _ = e.now()
		if err = e.commit(func(tx *store.Tx) error {
			if err := e.queueAttempt(tx, &r); err != nil {
				return err
			}
			return putSale(tx, &r)
		}); err != nil {
			return
		}
		e.waiting = nil
		e.log.Info("sale cancelled", "id", id)
		out = r.Sale
		e.cfg.Kick()
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

// Scan hands the engine one scanned code for the sale waiting for it. ok is false when
// the scan was not applied; err then says why (ErrNoSale, ErrAuthorizing,
// ErrCodeReused).
func (e *Engine) Scan(ctx context.Context, code string) (sale Sale, ok bool, err error) {
	return e.ScanFor(ctx, "", code)
}

// ScanFor is Scan for a given sale id (as a cash register with its own scanner sends
// it); an empty id means the sale waiting for a code.
func (e *Engine) ScanFor(ctx context.Context, id, code string) (sale Sale, ok bool, err error) {
	derr := e.do(ctx, func() { sale, ok, err = e.scan(id, code) })
	if derr != nil {
		return Sale{}, false, derr
	}
	return sale, ok, err
}

// legacyCodeHash is the unkeyed record of a used one-time code that versions before
// Config.CodeKey wrote; it is only looked up, never written, once a key is set.
func legacyCodeHash(code string) []byte {
	h := sha256.Sum256([]byte("walletless one-time code\x00" + code))
	return h[:16]
}

// codeHashes returns the record under which a used one-time code is written and
// every record under which an earlier use may be found.
func (e *Engine) codeHashes(code string) (write []byte, lookup [][]byte) {
	legacy := legacyCodeHash(code)
	if len(e.cfg.CodeKey) == 0 {
		return legacy, [][]byte{legacy}
	}
	m := hmac.New(sha256.New, e.cfg.CodeKey)
	m.Write([]byte("walletless one-time code\x00" + code))
	keyed := m.Sum(nil)[:16]
	return keyed, [][]byte{keyed, legacy}
}

func (e *Engine) scan(id, code string) (Sale, bool, error) {
	masked := paycode.Mask(code)
	if e.waiting == nil || (id != "" && e.waiting.ID != id) {
		err := ErrNoSale
		if id != "" {
			if s, gerr := e.Get(id); gerr != nil {
				return Sale{}, false, gerr
			} else if s.Status == StatusAuthorizing || s.Status == StatusInDoubt {
				err = ErrAuthorizing
			} else {
				err = fmt.Errorf("%w (status %s)", ErrNotWaiting, s.Status)
			}
		} else if e.authorizing() {
			err = ErrAuthorizing
		}
		e.log.Warn("scan ignored", "code", masked, "reason", err)
		return Sale{}, false, err
	}
	r := *e.waiting
	now, _ := e.now()
	r.UpdatedAt = now
	res, idErr := e.cfg.Identify(code)
	r.MaskedCode = masked
	if res.Masked != "" {
		r.MaskedCode = res.Masked
	}
	switch {
	case idErr != nil:
		r.Status, r.Reason = StatusDeclined, reason(idErr)
	case res.Kind != paycode.KindWallet && res.Kind != paycode.KindEMVCPM:
		r.Status, r.Reason = StatusDeclined, fmt.Sprintf("a %s code cannot pay a customer-presented sale", res.Kind)
	}
	r.Scheme, r.Operator, r.CodeKind = res.Scheme, res.Operator, string(res.Kind)
	if r.Status == StatusDeclined {
		if err := e.commit(func(tx *store.Tx) error {
			if err := e.queueAttempt(tx, &r); err != nil {
				return err
			}
			return putSale(tx, &r)
		}); err != nil {
			return Sale{}, true, err
		}
		e.waiting = nil
		e.log.Info("sale declined locally", "id", r.ID, "code", r.MaskedCode, "reason", r.Reason)
		e.finished(r.Sale)
		e.cfg.Kick()
		return r.Sale, true, nil
	}

	hash, earlier := e.codeHashes(code)
	var reused bool
	online := e.cfg.Online()
	policy := e.cfg.Offline.For(r.Scheme, r.CodeKind)
	deferOK, refusal := false, ""
	if !online {
		deferOK, refusal = e.exposure.allow(policy, r.AmountMinor, r.Currency)
	}
	var nb *batchRecord
	err := e.commit(func(tx *store.Tx) error {
		for _, h := range earlier {
			if at, seen := tx.CodeSeen(h); seen && now.Sub(at) < e.cfg.CodeReuseWindow {
				reused = true
				return nil
			}
		}
		switch {
		case online:
			r.Status, r.Reason = StatusAuthorizing, ""
		case deferOK:
			r.Status, r.Offline, r.Reason = StatusStoredOffline, true, "stored offline; forwarded when the network returns"
			// The merchant accepted the sale (the customer has left): its batch
			// counts it now, see countSale.
			var err error
			if nb, err = e.countSale(tx, &r); err != nil {
				return err
			}
		default:
			r.Status, r.Offline, r.Reason = StatusRefused, true, refusal
			if err := e.queueAttempt(tx, &r); err != nil {
				return err
			}
			return putSale(tx, &r)
		}
		if err := tx.PutCode(hash, now); err != nil {
			return err
		}
		seq, err := e.enqueue(tx, AuthRequest{
			Key: r.ID, AmountMinor: r.AmountMinor, Currency: r.Currency, Kind: r.CodeKind,
			Scheme: r.Scheme, Operator: r.Operator, Code: code, MaskedCode: r.MaskedCode, CreatedAt: r.CreatedAt,
			Offline: r.Offline, Batch: r.BatchID,
		})
		if err != nil {
			return err
		}
		r.PaySeq = seq
		return putSale(tx, &r)
	})
	if err != nil {
		return Sale{}, true, err
	}
	if nb != nil {
		e.batch = nb
	}
	if reused {
		e.log.Warn("one-time code used twice; sale still waits for a code", "id", r.ID, "code", r.MaskedCode)
		w := *e.waiting
		w.Reason, w.UpdatedAt = "the last code scanned was already used; ask the customer to refresh it", now
		if err := e.commit(func(tx *store.Tx) error { return putSale(tx, &w) }); err == nil {
			e.waiting = &w
		}
		return e.waiting.Sale, false, ErrCodeReused
	}
	e.waiting = nil
	switch r.Status {
	case StatusAuthorizing:
		e.pending[r.ID] = pending{status: StatusAuthorizing, deadline: now.Add(e.cfg.AuthTimeout), batch: r.BatchID}
		e.log.Info("sale authorizing", "id", r.ID, "scheme", r.Scheme, "code", r.MaskedCode)
	case StatusStoredOffline:
		e.storedOffline(&r)
		e.log.Warn("sale stored offline under a defer policy", "id", r.ID, "scheme", r.Scheme, "amount_minor", r.AmountMinor, "currency", r.Currency)
		e.finished(r.Sale)
	default:
		e.log.Warn("sale refused: offline", "id", r.ID, "scheme", r.Scheme, "reason", r.Reason)
		e.finished(r.Sale)
	}
	e.cfg.Kick()
	return r.Sale, true, nil
}

// storedOffline counts a stored_offline sale in the exposure and the expiry watch.
func (e *Engine) storedOffline(r *record) {
	e.offline[r.ID] = offlineSale{created: r.CreatedAt, maxAge: e.cfg.Offline.For(r.Scheme, r.CodeKind).MaxAge, flagged: r.Expired}
	e.exposure.add(r.AmountMinor, r.Currency)
}

// Stats is a summary of the engine's open work for the terminal's status page.
type Stats struct {
	Waiting       string           `json:"waiting_sale,omitempty"`
	Authorizing   int              `json:"authorizing"`
	InDoubt       int              `json:"in_doubt"`
	StoredOffline int              `json:"stored_offline"`
	Exposure      map[string]int64 `json:"offline_exposure_minor,omitempty"` // stored_offline total by currency
	OpenBatch     uint64           `json:"open_batch"`
}

// Stats returns the engine's open work.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := e.do(ctx, func() {
		if e.waiting != nil {
			s.Waiting = e.waiting.ID
		}
		for _, p := range e.pending {
			if p.status == StatusInDoubt {
				s.InDoubt++
			} else {
				s.Authorizing++
			}
		}
		s.StoredOffline = e.exposure.count
		if len(e.exposure.total) > 0 {
			s.Exposure = make(map[string]int64, len(e.exposure.total))
			for c, v := range e.exposure.total {
				s.Exposure[c] = v
			}
		}
		s.OpenBatch = e.batch.Number
	})
	return s, err
}

// authorizing reports whether some sale is authorizing right now.
func (e *Engine) authorizing() bool {
	for _, p := range e.pending {
		if p.status == StatusAuthorizing {
			return true
		}
	}
	return false
}

// enqueue encodes m and appends it to the outbox in tx.
func (e *Engine) enqueue(tx *store.Tx, m Message) (uint64, error) {
	b, err := e.cfg.EncodeOutbox(m)
	if err != nil {
		return 0, fmt.Errorf("payment: encode %s message: %w", m.MessageKind(), err)
	}
	return tx.Enqueue(b)
}

// queueAttempt queues the audit record of a sale that never went to the network.
func (e *Engine) queueAttempt(tx *store.Tx, r *record) error {
	at, _ := e.now()
	seq, err := e.enqueue(tx, AttemptRecord{
		Key: r.ID, Status: r.Status, Reason: r.Reason, AmountMinor: r.AmountMinor, Currency: r.Currency,
		CodeKind: r.CodeKind, Scheme: r.Scheme, MaskedCode: r.MaskedCode, Offline: r.Offline, CreatedAt: r.CreatedAt, At: at,
	})
	r.AttemptSeq = seq
	return err
}

// noteRefund marks refunds in the in-doubt index.
const noteRefund = "refund"

// putSale writes r and keeps the in-doubt index and the synced flag in step with it.
func putSale(tx *store.Tx, r *record) error {
	r.Synced = r.Status.Final() && !r.owes()
	note := ""
	if !r.Synced {
		note = string(r.Status)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := tx.PutSale(r.ID, raw); err != nil {
		return err
	}
	return tx.SetUnsettled(r.ID, note)
}

// commit runs fn in one store transaction and wraps a failure for the API.
func (e *Engine) commit(fn func(tx *store.Tx) error) error {
	if e.batchTx != nil {
		return fn(e.batchTx)
	}
	if err := e.cfg.Store.Update(fn); err != nil {
		if errors.Is(err, ErrOverflow) {
			return err
		}
		e.log.Error("store failed", "err", err)
		return fmt.Errorf("%w: %w", errStoreFailed, err)
	}
	return nil
}

// reason turns an identification error into a clerk-facing reason.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), "paycode: ")
}
