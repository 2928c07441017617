package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/walletless/walletless/paycode"
	wsync "github.com/walletless/walletless/sync"
)

// Applier applies a batch of parsed device messages in one ledger transaction and
// returns one Answer per message, in order. It returns answers only once the
// transaction committed, so a result the device sees is always durable; on an error
// nothing is answered (the devices resend). *Local (the decision rules on a Store:
// bbolt or PostgreSQL) implements it.
type Applier interface {
	Apply(ctx context.Context, msgs []Message) ([]Answer, error)
}

// Message is one decoded device message: its kind, the device of the topic it came
// on (which its payload claims too), its idempotency key and the decoded payload
// (*wsync.PaymentRequest, *wsync.QueryRequest, …), as wsync.DecodeUp returns it.
type Message struct {
	Kind   string
	Device string
	Key    string
	Msg    any
}

// Answer is the ledger's outcome for one Message.
type Answer struct {
	// Result is the answer to publish to the device (V, Key and Kind filled in); it is
	// zero when Ignored is set.
	Result wsync.PaymentResult `json:"result,omitzero"`
	// Fresh reports whether the ledger learnt something new (a new key decided, a
	// reversal, a batch): false for a replay answered from the ledger or a query.
	Fresh bool `json:"fresh,omitempty"`
	// Ignored, when not empty, says why the ledger refused the message; nothing is
	// answered for it.
	Ignored string `json:"ignored,omitempty"`
}

// Local applies batches to a ledger Store (bbolt or PostgreSQL) with the decision
// rules.
type Local struct {
	ledger Store
	rules  Rules
	log    *slog.Logger
}

// NewLocal returns an Applier on l deciding with rules; log may be nil.
func NewLocal(l Store, rules Rules, log *slog.Logger) *Local {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{ledger: l, rules: rules, log: log}
}

// Ledger returns the ledger the Local writes to.
func (l *Local) Ledger() Store { return l.ledger }

// Apply applies msgs in one write transaction (one fsync); the messages are trusted
// (decoded and validated by the caller). Times are kept to the microsecond, as
// PostgreSQL stores them, so a replay answers the same decided_at on every backend.
func (l *Local) Apply(ctx context.Context, msgs []Message) ([]Answer, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	answers := make([]Answer, len(msgs))
	keys := lockKeys(msgs)
	err := l.ledger.Transact(ctx, func(tx LedgerTx) error {
		if kl, ok := tx.(KeyLocker); ok {
			if err := kl.LockKeys(keys); err != nil {
				return err
			}
		}
		for i, m := range msgs {
			j := &job{Message: m}
			fresh, err := l.apply(tx, j, now)
			if err != nil {
				return err
			}
			j.res.V, j.res.Key, j.res.Kind = wsync.Version, m.Key, m.Kind
			answers[i] = Answer{Result: j.res, Fresh: fresh}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return answers, nil
}

// job is one message being applied inside a transaction.
type job struct {
	Message
	res wsync.PaymentResult
}

// apply handles one message inside tx and fills j.res. It reports whether the ledger
// learnt something new (false: a replay answered from the ledger or a query).
func (l *Local) apply(tx LedgerTx, j *job, now time.Time) (bool, error) {
	j.res.DecidedAt = now
	switch m := j.Msg.(type) {
	case *wsync.PaymentRequest:
		return l.applyPayment(tx, j, m, now)
	case *wsync.QueryRequest:
		e, ok, err := tx.Entry(m.Key)
		if err != nil {
			return false, err
		}
		if !ok || e.Device != j.Device || !e.IsSale() {
			j.res.Status = wsync.ResultUnknown
			return false, nil
		}
		j.res.Status, j.res.Reason, j.res.DecidedAt = e.Status, e.Reason, answeredAt(e)
		return false, nil
	case *wsync.ReversalRequest:
		return l.applyReversal(tx, j, m, now)
	case *wsync.RefundRequest:
		return l.applyRefund(tx, j, m, now)
	case *wsync.AttemptRecord:
		j.res.Status = wsync.ResultRecorded
		if _, ok, err := tx.Attempt(m.Key); err != nil || ok {
			return false, err
		}
		l.log.Info("attempt recorded", "key", m.Key, "device", j.Device, "outcome", m.Outcome)
		return true, tx.PutAttempt(Attempt{
			Key: m.Key, Device: m.Device, AmountMinor: m.AmountMinor, Currency: m.Currency, Kind: m.Kind,
			Scheme: m.Scheme, MaskedCode: paycode.Mask(m.MaskedCode), Outcome: m.Outcome, Reason: m.Reason,
			CreatedAt: m.CreatedAt, RecordedAt: now,
		})
	case *wsync.BatchClose:
		return l.applyBatch(tx, j, m, now)
	}
	return false, fmt.Errorf("gateway: no handler for %T", j.Msg)
}

func (l *Local) applyPayment(tx LedgerTx, j *job, req *wsync.PaymentRequest, now time.Time) (bool, error) {
	e, seen, err := tx.Entry(req.Key)
	if err != nil {
		return false, err
	}
	if seen && (e.Device != j.Device || !e.IsSale()) {
		// Never answer with another device's (or a refund's) record.
		j.res.Status, j.res.Reason = wsync.ResultDeclined, "idempotency key already used"
		l.log.Warn("payment key collides with another record", "key", req.Key, "device", j.Device)
		return false, nil
	}
	if seen {
		e.Requests++
		if err := tx.PutEntry(e); err != nil {
			return false, err
		}
		l.log.Debug("duplicate request answered from the ledger", "key", req.Key, "device", j.Device, "status", e.Status)
	} else {
		status, reason := l.rules.Decide(*req)
		if why, old := l.rules.stale(req, now); old && status == wsync.ResultApproved {
			status, reason = wsync.ResultDeclined, why
		}
		e = Entry{
			Key: req.Key, Type: TypeSale, Device: j.Device, AmountMinor: req.AmountMinor, Currency: req.Currency,
			Scheme: req.Scheme, MaskedCode: paycode.Mask(req.Code), Status: status, Reason: reason,
			CreatedAt: req.CreatedAt.UTC(), Batch: req.Batch, DecidedAt: now, Requests: 1,
		}
		if err := tx.PutEntry(e); err != nil {
			return false, err
		}
		l.log.Info("payment decided", "key", req.Key, "device", j.Device, "amount_minor", req.AmountMinor,
			"currency", req.Currency, "scheme", req.Scheme, "code", e.MaskedCode, "status", e.Status)
	}
	j.res.Status, j.res.Reason, j.res.DecidedAt = e.Status, e.Reason, answeredAt(e)
	return !seen, nil
}

func (l *Local) applyReversal(tx LedgerTx, j *job, m *wsync.ReversalRequest, now time.Time) (bool, error) {
	e, ok, err := tx.Entry(m.Key)
	if err != nil {
		return false, err
	}
	j.res.Status = wsync.ResultReversed
	switch {
	case !ok:
		// Never seen: remember the key as reversed so a late request with it is refused.
		e = Entry{Key: m.Key, Type: TypeSale, Device: j.Device, AmountMinor: m.AmountMinor, Currency: m.Currency,
			Status: wsync.ResultReversed, Reason: "reversed before the payment request arrived",
			DecidedAt: now, ReversedAt: now, CreatedAt: m.CreatedAt.UTC()}
		j.res.Reason = "no payment with this key; recorded as reversed"
		l.log.Info("reversal of an unseen key recorded", "key", m.Key, "device", j.Device)
		return true, tx.PutEntry(e)
	case e.Device != j.Device || !e.IsSale():
		j.res.Status, j.res.Reason = wsync.ResultDeclined, "not a sale of this device"
		return false, nil
	case e.Status == wsync.ResultReversed:
		// A replay of the reversal (or a second one): the same status, and the time
		// the key became reversed, so every answer for it carries one decided_at.
		j.res.Reason, j.res.DecidedAt = "already reversed", reversedAt(e)
		return false, nil
	case e.Status == wsync.ResultDeclined:
		// Nothing to undo: the record stays declined (a query answers declined), the
		// reversal is answered reversed ("not charged") with the decline's time.
		j.res.Reason, j.res.DecidedAt = "the payment was declined; nothing was charged", e.DecidedAt
		return false, nil
	case e.RefundedMinor > 0:
		j.res.Status, j.res.Reason = wsync.ResultDeclined, "the payment was partly refunded; refund the rest instead"
		return false, nil
	}
	e.Status, e.Reason, e.ReversedAt = wsync.ResultReversed, "reversed by the device", now
	if m.Reason != "" {
		e.Reason = "reversed: " + m.Reason
	}
	l.log.Info("payment reversed", "key", m.Key, "device", j.Device, "amount_minor", e.AmountMinor, "currency", e.Currency)
	return true, tx.PutEntry(e)
}

func (l *Local) applyRefund(tx LedgerTx, j *job, m *wsync.RefundRequest, now time.Time) (bool, error) {
	e, seen, err := tx.Entry(m.Key)
	if err != nil {
		return false, err
	}
	if seen {
		if e.Device != j.Device || e.IsSale() || e.OriginalKey != m.OriginalKey {
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
	case !ok || orig.Device != j.Device || !orig.IsSale():
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
	e = Entry{Key: m.Key, Type: TypeRefund, Device: j.Device, AmountMinor: m.AmountMinor, Currency: m.Currency,
		Scheme: orig.Scheme, Status: status, Reason: reason, CreatedAt: m.CreatedAt.UTC(), Batch: m.Batch, DecidedAt: now,
		Requests: 1, OriginalKey: m.OriginalKey}
	l.log.Info("refund decided", "key", m.Key, "original", m.OriginalKey, "device", j.Device, "amount_minor", m.AmountMinor, "status", status)
	j.res.Status, j.res.Reason = status, reason
	return true, tx.PutEntry(e)
}

func (l *Local) applyBatch(tx LedgerTx, j *job, m *wsync.BatchClose, now time.Time) (bool, error) {
	if b, ok, err := tx.Batch(m.Key); err != nil || ok {
		if ok {
			if b.Device != j.Device {
				j.res.Status, j.res.Reason = wsync.ResultDeclined, "idempotency key already used"
			} else {
				j.res.Status, j.res.Reason, j.res.DecidedAt = b.Status, b.Reason, b.RecordedAt
			}
		}
		return false, err
	}
	// The ledger's view of the same batch: the device's entries whose request named
	// this batch, and its entries without a batch (older devices) created in the
	// window. Two index ranges, not a scan of the ledger (see ForBatch).
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
	err := tx.ForBatch(j.Device, m.Key, m.OpenedAt, m.ClosedAt, func(e Entry) error {
		if e.Status != wsync.ResultApproved {
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
	b := Batch{Key: m.Key, Device: j.Device, OpenedAt: m.OpenedAt, ClosedAt: m.ClosedAt, Totals: lines, Status: wsync.ResultRecorded, RecordedAt: now}
	if len(diffs) > 0 {
		if len(diffs) > 4 {
			diffs = append(diffs[:4], fmt.Sprintf("and %d more", len(diffs)-4))
		}
		b.Status, b.Reason = wsync.ResultDeclined, "totals differ: "+strings.Join(diffs, "; ")
	}
	l.log.Info("batch reconciled", "key", m.Key, "device", j.Device, "status", b.Status, "reason", b.Reason)
	j.res.Status, j.res.Reason, j.res.DecidedAt = b.Status, b.Reason, now
	return true, tx.PutBatch(b)
}

// answeredAt is the decided_at of every answer from a stored sale: when it became
// reversed for a reversed one, its decision's time otherwise.
func answeredAt(e Entry) time.Time {
	if e.Status == wsync.ResultReversed {
		return reversedAt(e)
	}
	return e.DecidedAt
}

// reversedAt is when a reversed record became reversed (older ledgers may lack
// ReversedAt: then its decision time).
func reversedAt(e Entry) time.Time {
	if !e.ReversedAt.IsZero() {
		return e.ReversedAt
	}
	return e.DecidedAt
}
