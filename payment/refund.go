package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/walletless/walletless/store"
)

// Refund statuses.
const (
	RefundPending  Status = "pending"
	RefundApproved Status = "approved"
	RefundDeclined Status = "declined"
)

// Refund is a refund of (part of) an approved sale: its own record with its own
// idempotency key, referencing the original sale.
type Refund struct {
	ID            string `json:"id"` // the refund's idempotency key
	SaleID        string `json:"sale_id"`
	Status        Status `json:"status"`
	AmountMinor   int64  `json:"amount_minor"`
	Currency      string `json:"currency"`
	Scheme        string `json:"scheme,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Order         uint64 `json:"order"`
	ClockUnsynced bool   `json:"clock_unsynced,omitempty"`
	// BatchID is the settlement batch the refund belongs to: the one open when it was
	// created; its totals count the refund once it is approved.
	BatchID   string    `json:"batch_id,omitempty"`
	Synced    bool      `json:"synced"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type refundRecord struct {
	Refund
	Seq uint64 `json:"outbox_seq,omitempty"`
}

func putRefund(tx *store.Tx, f *refundRecord) error {
	f.Synced = f.Seq == 0
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := tx.PutRefund(f.ID, raw); err != nil {
		return err
	}
	note := ""
	if !f.Synced {
		note = noteRefund
	}
	return tx.SetUnsettled(f.ID, note)
}

func loadRefund(tx *store.Tx, id string) (*refundRecord, error) {
	raw, err := tx.Refund(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no refund %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("payment: %w", err)
	}
	var f refundRecord
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("payment: stored refund %s: %w", id, err)
	}
	return &f, nil
}

// Refund refunds amountMinor of an approved sale. The refund and the sale's refunded
// sum are committed with the refund's outbox entry in one transaction; the sum of
// refunds pending or approved never exceeds the original amount.
func (e *Engine) Refund(ctx context.Context, saleID string, amountMinor int64) (Refund, error) {
	if amountMinor <= 0 || amountMinor > MaxAmountMinor {
		return Refund{}, ErrBadAmount
	}
	var (
		out Refund
		err error
	)
	if derr := e.do(ctx, func() {
		var r *record
		if r, err = e.load(saleID); err != nil {
			return
		}
		if r.Status != StatusApproved {
			err = fmt.Errorf("%w (sale is %s)", ErrNotRefundable, r.Status)
			return
		}
		sum, aerr := addMinor(r.RefundedMinor, amountMinor)
		if aerr != nil || sum > r.AmountMinor {
			err = fmt.Errorf("%w: %d of %d minor units already refunded or pending, %d requested", ErrRefundTooLarge, r.RefundedMinor, r.AmountMinor, amountMinor)
			return
		}
		now, synced := e.now()
		f := &refundRecord{Refund: Refund{ID: newID(now), SaleID: r.ID, Status: RefundPending, AmountMinor: amountMinor,
			Currency: r.Currency, Scheme: r.Scheme, ClockUnsynced: !synced, BatchID: e.batch.ID, CreatedAt: now, UpdatedAt: now}}
		if err = e.commit(func(tx *store.Tx) error {
			n, err := tx.NextOrder()
			if err != nil {
				return err
			}
			f.Order = n
			seq, err := e.enqueue(tx, RefundRequest{Key: f.ID, SaleKey: r.ID, AmountMinor: amountMinor, Currency: r.Currency, Scheme: r.Scheme, At: now, Batch: f.BatchID})
			if err != nil {
				return err
			}
			f.Seq = seq
			if err := putRefund(tx, f); err != nil {
				return err
			}
			r.RefundedMinor = sum
			r.Refunds = append(r.Refunds, f.ID)
			return putSale(tx, r)
		}); err != nil {
			return
		}
		e.refunds[f.ID] = f.BatchID
		e.log.Info("refund queued", "id", f.ID, "sale", r.ID, "amount_minor", amountMinor, "currency", r.Currency, "batch", f.BatchID)
		out = f.Refund
		e.cfg.Kick()
	}); derr != nil {
		return Refund{}, derr
	}
	return out, err
}

// GetRefund returns a refund as last committed.
func (e *Engine) GetRefund(id string) (Refund, error) {
	var f *refundRecord
	err := e.cfg.Store.View(func(tx *store.Tx) error {
		var err error
		f, err = loadRefund(tx, id)
		return err
	})
	if err != nil {
		return Refund{}, err
	}
	return f.Refund, nil
}

func (e *Engine) refundResult(res Result) error {
	var f *refundRecord
	err := e.view(func(tx *store.Tx) error {
		var err error
		f, err = loadRefund(tx, res.Key)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		e.log.Warn("result for an unknown refund ignored", "key", res.Key)
		return nil
	}
	if err != nil {
		return err
	}
	if f.Status != RefundPending {
		e.log.Debug("duplicate refund result ignored", "id", f.ID)
		return nil
	}
	var nb *batchRecord
	f.UpdatedAt, _ = e.now()
	err = e.commit(func(tx *store.Tx) error {
		switch res.Status {
		case ResultApproved:
			f.Status = RefundApproved
			var err error
			if nb, err = e.countRefund(tx, f); err != nil {
				return err
			}
		case ResultDeclined:
			f.Status, f.Reason = RefundDeclined, orDefault(res.Reason, "declined by the payment operator")
			r, err := loadSale(tx, f.SaleID)
			if err != nil {
				return err
			}
			r.RefundedMinor -= f.AmountMinor
			if err := putSale(tx, r); err != nil {
				return err
			}
		default:
			return nil
		}
		if err := tx.Dequeue(f.Seq); err != nil {
			return err
		}
		f.Seq = 0
		return putRefund(tx, f)
	})
	if err != nil {
		return err
	}
	if nb != nil {
		e.batch = nb
	}
	if f.Status != RefundPending {
		delete(e.refunds, f.ID)
	}
	e.log.Info("refund "+string(f.Status), "id", f.ID, "sale", f.SaleID)
	return nil
}
