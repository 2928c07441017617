package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/store"
)

// Batch statuses.
const (
	BatchOpen   = "open"
	BatchClosed = "closed"
)

// Total is one line of a settlement batch: approved sales and refunds of one scheme in
// one currency. NetMinor is SalesMinor − RefundsMinor.
type Total struct {
	Scheme       string `json:"scheme"`
	Currency     string `json:"currency"`
	SalesCount   int64  `json:"sales_count"`
	SalesMinor   int64  `json:"sales_minor"`
	RefundsCount int64  `json:"refunds_count"`
	RefundsMinor int64  `json:"refunds_minor"`
	NetMinor     int64  `json:"net_minor"`
}

// Batch is a settlement batch. The open batch keeps running totals, updated in the
// same transaction as each approval, so reading them never scans sales.
type Batch struct {
	ID            string    `json:"id"`
	Number        uint64    `json:"number"`
	Status        string    `json:"status"`
	OpenedAt      time.Time `json:"opened_at"`
	ClosedAt      time.Time `json:"closed_at,omitzero"`
	ClockUnsynced bool      `json:"clock_unsynced,omitempty"`
	Totals        []Total   `json:"totals"`
	Synced        bool      `json:"synced"`
	// Mismatch is the cloud's reason when its own totals differ from the batch's.
	Mismatch string `json:"mismatch,omitempty"`
}

type batchRecord struct {
	Batch
	Seq uint64 `json:"outbox_seq,omitempty"`
}

const metaOpenBatch = "open_batch"

func (b *batchRecord) clone() *batchRecord {
	c := *b
	c.Totals = append(make([]Total, 0, len(b.Totals)), b.Totals...) // [] not null when empty (HTTP API)
	return &c
}

// total returns the line for scheme and currency, adding it in sorted place.
func (b *batchRecord) total(scheme, currency string) *Total {
	i := sort.Search(len(b.Totals), func(i int) bool {
		t := b.Totals[i]
		return t.Scheme > scheme || t.Scheme == scheme && t.Currency >= currency
	})
	if i == len(b.Totals) || b.Totals[i].Scheme != scheme || b.Totals[i].Currency != currency {
		b.Totals = append(b.Totals, Total{})
		copy(b.Totals[i+1:], b.Totals[i:])
		b.Totals[i] = Total{Scheme: scheme, Currency: currency}
	}
	return &b.Totals[i]
}

func putBatch(tx *store.Tx, b *batchRecord) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return tx.PutBatch(b.ID, raw)
}

func loadBatch(tx *store.Tx, id string) (*batchRecord, error) {
	raw, err := tx.Batch(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no batch %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("payment: %w", err)
	}
	var b batchRecord
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("payment: stored batch %s: %w", id, err)
	}
	return &b, nil
}

// openBatch loads the open batch, creating the first one on a new file.
func (e *Engine) openBatch(now time.Time) error {
	err := e.cfg.Store.Update(func(tx *store.Tx) error {
		if id, err := tx.Meta(metaOpenBatch); err == nil {
			b, err := loadBatch(tx, string(id))
			if err != nil {
				return err
			}
			e.batch = b
			return nil
		}
		b := &batchRecord{Batch: Batch{ID: newID(now), Number: 1, Status: BatchOpen, OpenedAt: now.UTC(), ClockUnsynced: !e.cfg.ClockSynced(now)}}
		if err := putBatch(tx, b); err != nil {
			return err
		}
		if err := tx.PutMeta(metaOpenBatch, []byte(b.ID)); err != nil {
			return err
		}
		e.batch = b
		return nil
	})
	if err != nil {
		return fmt.Errorf("payment: open batch: %w", err)
	}
	return nil
}

// countSale adds a sale (approved, or accepted under a defer policy) to a copy of its
// batch and writes it in tx; the caller installs the copy once tx commits. A sale
// belongs to the batch open when it was created, and CloseBatch waits for a batch's
// authorizing and in-doubt sales, so that batch is the open one. Two cases remain:
// a sale recorded by an older version has no batch and is counted in the open batch
// (as those versions did); a sale whose batch is already closed (which the close rule
// prevents) is not counted anywhere, and the cloud's reconciliation of that batch
// reports the difference.
func (e *Engine) countSale(tx *store.Tx, r *record) (*batchRecord, error) {
	if r.BatchID == "" {
		r.BatchID = e.batch.ID
	}
	if r.BatchID != e.batch.ID {
		e.log.Error("sale of a closed batch not counted; the cloud will report that batch mismatched", "id", r.ID, "batch", r.BatchID)
		return nil, nil
	}
	nb := e.batch.clone()
	t := nb.total(r.Scheme, r.Currency)
	var err error
	if t.SalesMinor, err = addMinor(t.SalesMinor, r.AmountMinor); err != nil {
		return nil, err
	}
	if t.NetMinor, err = addMinor(t.NetMinor, r.AmountMinor); err != nil {
		return nil, err
	}
	t.SalesCount++
	r.Counted = true
	return nb, putBatch(tx, nb)
}

// uncountSale takes a sale stored offline, and counted then, out of its batch when
// the cloud did not approve it. If the batch is closed already, its totals stay as
// they were sent and the cloud reports the batch mismatched: the sale the merchant
// accepted offline was not paid.
func (e *Engine) uncountSale(tx *store.Tx, r *record) (*batchRecord, error) {
	if r.BatchID != e.batch.ID {
		e.log.Warn("sale stored offline was not approved after its batch closed; that batch's totals include it", "id", r.ID, "batch", r.BatchID)
		return nil, nil
	}
	nb := e.batch.clone()
	t := nb.total(r.Scheme, r.Currency)
	t.SalesCount--
	t.SalesMinor -= r.AmountMinor // counted before, so no overflow
	t.NetMinor -= r.AmountMinor
	if t.SalesCount == 0 && t.RefundsCount == 0 {
		nb.drop(r.Scheme, r.Currency)
	}
	r.Counted = false
	return nb, putBatch(tx, nb)
}

// drop removes the line for scheme and currency.
func (b *batchRecord) drop(scheme, currency string) {
	for i, t := range b.Totals {
		if t.Scheme == scheme && t.Currency == currency {
			b.Totals = append(b.Totals[:i], b.Totals[i+1:]...)
			return
		}
	}
}

// countRefund adds an approved refund to a copy of its batch (see countSale).
func (e *Engine) countRefund(tx *store.Tx, f *refundRecord) (*batchRecord, error) {
	if f.BatchID == "" {
		f.BatchID = e.batch.ID
	}
	if f.BatchID != e.batch.ID {
		e.log.Error("refund of a closed batch not counted; the cloud will report that batch mismatched", "id", f.ID, "batch", f.BatchID)
		return nil, nil
	}
	nb := e.batch.clone()
	t := nb.total(f.Scheme, f.Currency)
	var err error
	if t.RefundsMinor, err = addMinor(t.RefundsMinor, f.AmountMinor); err != nil {
		return nil, err
	}
	if t.NetMinor, err = addMinor(t.NetMinor, -f.AmountMinor); err != nil {
		return nil, err
	}
	t.RefundsCount++
	return nb, putBatch(tx, nb)
}

// CurrentBatch returns the open batch with its running totals.
func (e *Engine) CurrentBatch(ctx context.Context) (Batch, error) {
	var out Batch
	if err := e.do(ctx, func() { out = e.batch.clone().Batch }); err != nil {
		return Batch{}, err
	}
	return out, nil
}

// GetBatch returns a batch by id.
func (e *Engine) GetBatch(id string) (Batch, error) {
	var b *batchRecord
	err := e.cfg.Store.View(func(tx *store.Tx) error {
		var err error
		b, err = loadBatch(tx, id)
		return err
	})
	if err != nil {
		return Batch{}, err
	}
	return b.clone().Batch, nil // Totals [] (not null) when the batch is empty
}

// CloseBatch closes the open batch, queues its totals for the cloud (kind batch) and
// opens the next one, in one transaction.
//
// Sales and refunds belong to the batch open when they were created, so the totals
// are final only when none of them is in progress: while a sale of the batch waits
// for a code, authorizes or is in doubt, or a refund of it waits for the cloud's
// answer, CloseBatch refuses with a *BatchBusyError (errors.Is ErrBatchBusy) and
// changes nothing. Authorizing and in-doubt sales are settled by the configured
// timeouts (approved, declined, stored offline or reversal pending), so that refusal
// is short. Sales stored offline do not hold the close: they are counted already.
// Sales with a reversal pending do not either: they are not paid, and the reversal,
// queued before the close, reaches the cloud before it.
func (e *Engine) CloseBatch(ctx context.Context) (Batch, error) {
	var (
		out Batch
		err error
	)
	if derr := e.do(ctx, func() {
		if busy := e.inProgress(); busy != nil {
			err = busy
			e.log.Info("batch close refused: work in progress", "id", e.batch.ID, "waiting", busy.Waiting,
				"authorizing", busy.Authorizing, "in_doubt", busy.InDoubt, "refunds", busy.Refunds)
			return
		}
		now, synced := e.now()
		closed := e.batch.clone()
		if now.Before(closed.OpenedAt) {
			// The clock went back (a Pi without RTC before NTP): never close before
			// opening; the flag says the times are not to be trusted.
			now, closed.ClockUnsynced = closed.OpenedAt, true
		}
		if !synced {
			closed.ClockUnsynced = true
		}
		closed.Status, closed.ClosedAt = BatchClosed, now
		next := &batchRecord{Batch: Batch{ID: newID(now), Number: closed.Number + 1, Status: BatchOpen, OpenedAt: now, ClockUnsynced: !synced}}
		if err = e.commit(func(tx *store.Tx) error {
			seq, err := e.enqueue(tx, BatchClose{Key: closed.ID, Number: closed.Number, OpenedAt: closed.OpenedAt, ClosedAt: now, Totals: closed.Totals})
			if err != nil {
				return err
			}
			closed.Seq = seq
			if err := putBatch(tx, closed); err != nil {
				return err
			}
			if err := putBatch(tx, next); err != nil {
				return err
			}
			return tx.PutMeta(metaOpenBatch, []byte(next.ID))
		}); err != nil {
			return
		}
		e.batch = next
		out = closed.Batch
		e.log.Info("batch closed", "id", closed.ID, "number", closed.Number, "lines", len(closed.Totals))
		e.cfg.Kick()
	}); derr != nil {
		return Batch{}, derr
	}
	return out, err
}

// inProgress returns what of the open batch is still in progress, or nil. Records
// without a batch (made by older versions) count as the open batch's: they are
// counted in it when they finish.
func (e *Engine) inProgress() *BatchBusyError {
	mine := func(id string) bool { return id == "" || id == e.batch.ID }
	var b BatchBusyError
	if e.waiting != nil && mine(e.waiting.BatchID) {
		b.Waiting++
	}
	now := e.cfg.Now()
	for _, p := range e.pending {
		if !mine(p.batch) {
			continue
		}
		left := p.deadline.Sub(now)
		if p.status == StatusInDoubt {
			b.InDoubt++
		} else {
			b.Authorizing++
			left += e.cfg.QueryTimeout
		}
		b.Within = max(b.Within, left)
	}
	for _, batch := range e.refunds {
		if mine(batch) {
			b.Refunds++
		}
	}
	if b == (BatchBusyError{}) {
		return nil
	}
	if b.Authorizing+b.InDoubt > 0 {
		// Whole seconds, rounded up, at least one: the engine's timer runs every 250ms.
		b.Within = max(time.Second, (b.Within + time.Second - 1).Truncate(time.Second))
	}
	return &b
}

func (e *Engine) batchResult(res Result) error {
	var b *batchRecord
	err := e.view(func(tx *store.Tx) error {
		var err error
		b, err = loadBatch(tx, res.Key)
		return err
	})
	if err != nil || b.Seq == 0 || (res.Status != ResultRecorded && res.Status != ResultDeclined) {
		e.log.Debug("batch result ignored", "key", res.Key, "status", res.Status, "err", err)
		return nil
	}
	if res.Status == ResultDeclined {
		b.Mismatch = orDefault(res.Reason, "the cloud's totals differ")
		e.log.Warn("batch totals do not match the cloud's", "id", b.ID, "number", b.Number, "reason", b.Mismatch)
	}
	return e.commit(func(tx *store.Tx) error {
		if err := tx.Dequeue(b.Seq); err != nil {
			return err
		}
		b.Seq, b.Synced = 0, true
		return putBatch(tx, b)
	})
}

// ZReport renders a batch as the printable end-of-day report: one line per scheme and
// currency with counts and amounts in major units, and a net total per currency.
func ZReport(b Batch, merchant string) string {
	var sb strings.Builder
	if merchant != "" {
		fmt.Fprintf(&sb, "%s\n", merchant)
	}
	fmt.Fprintf(&sb, "Z REPORT  batch %d  (%s)\n", b.Number, b.Status)
	fmt.Fprintf(&sb, "opened  %s\n", b.OpenedAt.UTC().Format("2006-01-02 15:04:05Z07:00"))
	if !b.ClosedAt.IsZero() {
		fmt.Fprintf(&sb, "closed  %s\n", b.ClosedAt.UTC().Format("2006-01-02 15:04:05Z07:00"))
	}
	if b.ClockUnsynced {
		sb.WriteString("! opened before the clock was synchronized\n")
	}
	sb.WriteString("\n")
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheme\tcur\tsales\tamount\trefunds\tamount\tnet\t")
	net := map[string]int64{}
	overflow := map[string]bool{}
	var curs []string
	for _, t := range b.Totals {
		c, _ := paycode.LookupCurrency(t.Currency)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t\n", t.Scheme, t.Currency, t.SalesCount,
			paycode.FormatAmount(t.SalesMinor, c), t.RefundsCount, paycode.FormatAmount(t.RefundsMinor, c), paycode.FormatAmount(t.NetMinor, c))
		if _, ok := net[t.Currency]; !ok {
			curs = append(curs, t.Currency)
		}
		if sum, err := addMinor(net[t.Currency], t.NetMinor); err == nil {
			net[t.Currency] = sum
		} else {
			overflow[t.Currency] = true
		}
	}
	tw.Flush()
	if len(b.Totals) == 0 {
		sb.WriteString("no approved sales or refunds\n")
	}
	sort.Strings(curs)
	sb.WriteString("\n")
	for _, cur := range curs {
		c, _ := paycode.LookupCurrency(cur)
		if overflow[cur] {
			fmt.Fprintf(&sb, "NET %s overflow: add the lines by hand\n", cur)
			continue
		}
		fmt.Fprintf(&sb, "NET %s %s\n", cur, paycode.FormatAmount(net[cur], c))
	}
	return sb.String()
}
