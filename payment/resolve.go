package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/walletless/walletless/store"
)

// HandleResult applies the cloud's result for a key once it is durably stored.
// Results for unknown or already finished sales are ignored with a log line, so
// duplicated and reordered results are harmless.
func (e *Engine) HandleResult(ctx context.Context, res Result) error {
	var err error
	if derr := e.do(ctx, func() { err = e.applyResult(res) }); derr != nil {
		return derr
	}
	return err
}

// HandleResults applies several results in one store transaction (one fsync), as the
// cloud link delivers them while a backlog drains. Finished callbacks run after the
// commit. If the transaction fails, nothing of it is stored, the engine reloads its
// state from the store, and the error is returned so the link resends the requests.
func (e *Engine) HandleResults(ctx context.Context, rs []Result) error {
	if len(rs) == 1 {
		return e.HandleResult(ctx, rs[0])
	}
	var err error
	if derr := e.do(ctx, func() { err = e.applyResults(rs) }); derr != nil {
		return derr
	}
	return err
}

func (e *Engine) applyResults(rs []Result) error {
	var finished []Sale
	e.finishedQ = &finished
	err := e.cfg.Store.Update(func(tx *store.Tx) error {
		e.batchTx = tx
		defer func() { e.batchTx = nil }()
		for _, r := range rs {
			if err := e.applyResult(r); err != nil {
				return err
			}
		}
		return nil
	})
	e.finishedQ = nil
	if err != nil {
		e.log.Error("results not stored; reloading state, the requests will be resent", "count", len(rs), "err", err)
		e.waiting, e.batch = nil, nil
		e.pending = make(map[string]pending)
		e.refunds = make(map[string]string)
		e.offline = make(map[string]offlineSale)
		e.exposure = exposure{total: make(map[string]int64)}
		if rerr := e.recover(); rerr != nil {
			return fmt.Errorf("payment: reload after a failed result transaction: %w (after %w)", rerr, err)
		}
		return fmt.Errorf("%w: %w", errStoreFailed, err)
	}
	for _, s := range finished {
		e.cfg.Finished(s)
	}
	return nil
}

func (e *Engine) applyResult(res Result) error {
	kind := res.Kind
	if kind == "" {
		kind = KindPayment
	}
	switch kind {
	case KindRefund:
		return e.refundResult(res)
	case KindBatch:
		return e.batchResult(res)
	}
	r, err := e.load(res.Key)
	if errors.Is(err, ErrNotFound) {
		e.log.Warn("result for an unknown sale ignored", "key", res.Key, "kind", kind)
		return nil
	}
	if err != nil {
		return err
	}
	switch kind {
	case KindAttempt:
		if r.AttemptSeq == 0 || res.Status != ResultRecorded {
			e.log.Debug("attempt result ignored", "id", r.ID, "status", res.Status)
			return nil
		}
		return e.commit(func(tx *store.Tx) error {
			if err := tx.Dequeue(r.AttemptSeq); err != nil {
				return err
			}
			r.AttemptSeq = 0
			return putSale(tx, r)
		})
	case KindReversal:
		if r.Status != StatusReversalPending {
			e.log.Debug("reversal result for a sale not being reversed ignored", "id", r.ID, "status", r.Status)
			return nil
		}
		switch res.Status {
		case ResultReversed:
			r.Status, r.Reason = StatusReversed, "did not go through; the payment network confirmed the reversal"
		case ResultDeclined:
			r.Status, r.Reason = StatusReversalFailed, "the payment network refused the reversal: "+orDefault(res.Reason, "no reason given")+"; call support"
		default:
			e.log.Warn("unexpected reversal result ignored", "id", r.ID, "status", res.Status)
			return nil
		}
		r.UpdatedAt, _ = e.now()
		if err := e.commit(func(tx *store.Tx) error {
			if err := tx.Dequeue(r.ReversalSeq); err != nil {
				return err
			}
			r.ReversalSeq = 0
			return putSale(tx, r)
		}); err != nil {
			return err
		}
		e.log.Info("sale "+string(r.Status), "id", r.ID, "reason", r.Reason)
		return nil
	case KindPayment, KindQuery:
	default:
		e.log.Warn("result of an unknown kind ignored", "key", res.Key, "kind", kind)
		return nil
	}
	open := r.Status == StatusAuthorizing || r.Status == StatusInDoubt || r.Status == StatusStoredOffline
	if !open {
		if r.Status == StatusReversalPending {
			e.log.Warn("late result for a sale being reversed; the reversal settles it", "id", r.ID, "status", res.Status)
		} else {
			e.log.Debug("duplicate result ignored", "id", r.ID, "status", r.Status)
		}
		return nil
	}
	switch res.Status {
	case ResultApproved:
		return e.finish(r, StatusApproved, "")
	case ResultDeclined:
		why := orDefault(res.Reason, "declined by the payment operator")
		if r.Status == StatusStoredOffline {
			why = "declined after being stored offline: " + why
		}
		return e.finish(r, StatusDeclined, why)
	case ResultReversed:
		return e.finish(r, StatusReversed, "the payment network reports the sale reversed")
	case ResultUnknown:
		if kind == KindQuery && r.Status == StatusInDoubt {
			return e.settleUnknown(r, "the payment network has no record of it")
		}
		e.log.Debug("unknown-status answer ignored", "id", r.ID, "status", r.Status)
		return nil
	}
	e.log.Warn("unexpected result status ignored", "id", r.ID, "status", res.Status)
	return nil
}

// finish settles an open sale with the cloud's answer.
func (e *Engine) finish(r *record, st Status, why string) error {
	was := r.Status
	r.Status, r.Reason, r.QR = st, why, ""
	r.UpdatedAt, _ = e.now()
	var nb *batchRecord
	if err := e.commit(func(tx *store.Tx) error {
		if err := tx.Dequeue(r.PaySeq); err != nil {
			return err
		}
		if err := tx.Dequeue(r.QuerySeq); err != nil {
			return err
		}
		r.PaySeq, r.QuerySeq = 0, 0
		var err error
		switch {
		case st == StatusApproved && !r.Counted:
			nb, err = e.countSale(tx, r)
		case st != StatusApproved && r.Counted:
			// A sale stored offline (and counted then) that the cloud did not approve.
			nb, err = e.uncountSale(tx, r)
		}
		if err != nil {
			return err
		}
		return putSale(tx, r)
	}); err != nil {
		e.log.Error("could not store result; it will be applied when resent", "id", r.ID, "err", err)
		return err
	}
	if nb != nil {
		e.batch = nb
	}
	delete(e.pending, r.ID)
	if was == StatusStoredOffline {
		delete(e.offline, r.ID)
		e.exposure.remove(r.AmountMinor, r.Currency)
		if st != StatusApproved {
			e.log.Warn("sale stored offline was not approved", "id", r.ID, "status", st, "reason", why)
		}
	}
	e.log.Info("sale "+string(st), "id", r.ID, "reason", r.Reason)
	if was != StatusStoredOffline {
		e.finished(r.Sale)
	}
	return nil
}

// settleUnknown decides an in-doubt sale that the status query could not settle: under
// a defer policy within limits it is stored offline; otherwise a durable reversal is
// queued and the clerk is told the sale did not go through.
func (e *Engine) settleUnknown(r *record, why string) error {
	policy := e.cfg.Offline.For(r.Scheme, r.CodeKind)
	deferOK, _ := e.exposure.allow(policy, r.AmountMinor, r.Currency)
	now, _ := e.now()
	r.UpdatedAt = now
	var nb *batchRecord
	if err := e.commit(func(tx *store.Tx) error {
		if err := tx.Dequeue(r.QuerySeq); err != nil {
			return err
		}
		r.QuerySeq = 0
		if deferOK {
			r.Status, r.Offline = StatusStoredOffline, true
			r.Reason = "no answer (" + why + "); stored offline and forwarded again later"
			var err error
			if nb, err = e.countSale(tx, r); err != nil {
				return err
			}
			return putSale(tx, r)
		}
		if err := tx.Dequeue(r.PaySeq); err != nil {
			return err
		}
		r.PaySeq, r.QR = 0, ""
		r.Status = StatusReversalPending
		r.Reason = "did not go through (" + why + "); a reversal is queued — ask for another payment"
		seq, err := e.enqueue(tx, ReversalRequest{Key: r.ID, AmountMinor: r.AmountMinor, Currency: r.Currency, Scheme: r.Scheme, Reason: why, At: now})
		if err != nil {
			return err
		}
		r.ReversalSeq = seq
		return putSale(tx, r)
	}); err != nil {
		return err
	}
	if nb != nil {
		e.batch = nb
	}
	delete(e.pending, r.ID)
	if deferOK {
		e.storedOffline(r)
		e.log.Warn("in-doubt sale stored offline under a defer policy", "id", r.ID)
	} else {
		e.log.Warn("in-doubt sale not settled by the query; reversal queued", "id", r.ID, "why", why)
	}
	e.finished(r.Sale)
	e.cfg.Kick()
	return nil
}

// tick runs the engine's timers: authorizing → in_doubt with a status query, in_doubt
// beyond QueryTimeout → settled by policy, stored_offline beyond max age → expired,
// and hourly pruning.
func (e *Engine) tick(now time.Time) {
	for id, p := range e.pending {
		if now.Before(p.deadline) {
			continue
		}
		r, err := e.load(id)
		if err != nil {
			e.log.Error("pending sale unreadable", "id", id, "err", err)
			delete(e.pending, id)
			continue
		}
		switch r.Status {
		case StatusAuthorizing:
			e.toInDoubt(r, now)
		case StatusInDoubt:
			if err := e.settleUnknown(r, "no answer to the status query"); err != nil {
				e.log.Error("could not settle in-doubt sale", "id", id, "err", err)
			}
		default:
			delete(e.pending, id)
		}
	}
	for id, o := range e.offline {
		if o.flagged || o.maxAge <= 0 || now.Sub(o.created) < o.maxAge {
			continue
		}
		r, err := e.load(id)
		if err != nil || r.Status != StatusStoredOffline {
			delete(e.offline, id)
			continue
		}
		if !r.Expired {
			r.Expired = true
			r.UpdatedAt = now.UTC()
			if err := e.commit(func(tx *store.Tx) error { return putSale(tx, r) }); err != nil {
				continue
			}
			e.log.Warn("sale stored offline is older than its policy's max age", "id", id)
		}
		o.flagged = true
		e.offline[id] = o
	}
	if now.Sub(e.lastPrune) >= time.Hour {
		e.lastPrune = now
		e.prune(now)
	}
}

// toInDoubt marks an authorizing sale in doubt and queues a status query. The payment
// request stays queued, so a late answer to it still settles the sale.
func (e *Engine) toInDoubt(r *record, now time.Time) {
	r.Status, r.Reason, r.UpdatedAt, r.InDoubtAt = StatusInDoubt, "no answer from the payment network yet; asking it for the sale's status", now.UTC(), now.UTC()
	if err := e.commit(func(tx *store.Tx) error {
		seq, err := e.enqueue(tx, QueryRequest{Key: r.ID, AskedAt: now.UTC()})
		if err != nil {
			return err
		}
		r.QuerySeq = seq
		return putSale(tx, r)
	}); err != nil {
		e.log.Error("could not mark sale in doubt", "id", r.ID, "err", err)
		return
	}
	e.pending[r.ID] = pending{status: StatusInDoubt, deadline: now.Add(e.cfg.QueryTimeout), batch: r.BatchID}
	e.log.Warn("sale in doubt; status query queued", "id", r.ID)
	e.cfg.Kick()
}

// prune forgets old one-time code hashes and deletes final, synced sales older than
// PruneAfter. Sale ids sort by time, so the walk stops at the first young sale.
func (e *Engine) prune(now time.Time) {
	if _, err := e.cfg.Store.PruneCodes(now.Add(-e.cfg.CodeReuseWindow)); err != nil {
		e.log.Error("prune code hashes", "err", err)
	}
	if e.cfg.PruneAfter <= 0 {
		return
	}
	cutoff := now.Add(-e.cfg.PruneAfter)
	total := 0
	for {
		n, err := e.cfg.Store.PruneSales(1000, func(id string, doc []byte) (bool, bool) {
			if t, ok := idTime(id); !ok || !t.Before(cutoff) {
				return false, ok
			}
			var r record
			if json.Unmarshal(doc, &r) != nil || r.ClockUnsynced {
				// A sale made before the clock was synchronized has an id time that
				// may be decades off: it is not pruned by age.
				return false, false
			}
			return r.Synced && r.Status.Final(), false
		})
		total += n
		if err != nil {
			e.log.Error("prune sales", "err", err)
			return
		}
		if n < 1000 {
			break
		}
	}
	if total > 0 {
		e.log.Info("pruned synced sales", "count", total, "older_than", cutoff)
	}
}

// Prune runs pruning now (the engine also runs it hourly).
func (e *Engine) Prune(ctx context.Context) error {
	return e.do(ctx, func() { e.prune(e.cfg.Now()) })
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
