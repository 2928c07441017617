package payment

import (
	"context"
	"fmt"
	"math/big"
	"strings"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/store"
)

// Sale flows.
const (
	FlowCustomerPresented = "customer_presented" // the scanner reads the customer's code (the default)
	FlowMerchantPresented = "merchant_presented" // posd shows a dynamic EMVCo QR; the cloud reports it paid
)

// referenceLabel is the sale id in the 25 characters an EMVCo reference label (62.05)
// allows: the id's 128 bits in base 36, upper case.
func referenceLabel(id string) string {
	n, _ := new(big.Int).SetString(strings.ReplaceAll(id, "-", ""), 16)
	s := strings.ToUpper(n.Text(36))
	return strings.Repeat("0", 25-len(s)) + s
}

// Present starts a merchant-presented sale: it builds a dynamic EMVCo QR from
// Config.MerchantCode with the amount and the sale's reference, commits the sale with
// its payment request (kind emv_mpm, carrying the public QR) and returns the sale with
// the QR to show or print. The sale is authorizing until the cloud reports the
// customer's payment; without an answer within Config.PresentTimeout it goes in doubt
// like any other sale. Offline, it is refused: nobody could tell the terminal that the
// customer paid.
func (e *Engine) Present(ctx context.Context, amountMinor int64, currency string) (Sale, error) {
	if amountMinor <= 0 || amountMinor > MaxAmountMinor {
		return Sale{}, ErrBadAmount
	}
	cur, ok := paycode.LookupCurrency(strings.ToUpper(currency))
	if !ok || len(currency) != 3 {
		return Sale{}, fmt.Errorf("%w: %q", ErrCurrency, currency)
	}
	if e.cfg.MerchantCode == nil {
		return Sale{}, ErrNoMerchantCode
	}
	var (
		out Sale
		err error
	)
	if derr := e.do(ctx, func() { out, err = e.present(amountMinor, cur) }); derr != nil {
		return Sale{}, derr
	}
	return out, err
}

func (e *Engine) present(amountMinor int64, cur paycode.Currency) (Sale, error) {
	now, synced := e.now()
	r := &record{Sale: Sale{ID: newID(now), Flow: FlowMerchantPresented, AmountMinor: amountMinor, Currency: cur.Code,
		ClockUnsynced: !synced, BatchID: e.batch.ID, CreatedAt: now, UpdatedAt: now}, CodeKind: string(paycode.KindEMVMPM)}
	m := *e.cfg.MerchantCode
	m.PointOfInitiation = paycode.PointDynamic
	m.Currency, m.Amount = cur.Numeric, paycode.FormatAmount(amountMinor, cur)
	m.Additional = nil
	for _, f := range e.cfg.MerchantCode.Additional {
		if f.ID != paycode.AddReferenceLabel {
			m.Additional = append(m.Additional, f)
		}
	}
	m.Additional = append(m.Additional, paycode.Field{ID: paycode.AddReferenceLabel, Value: referenceLabel(r.ID)})
	qr, err := paycode.Build(m)
	if err != nil {
		return Sale{}, fmt.Errorf("payment: merchant code template: %w", err)
	}
	r.Scheme, r.Operator = "emvco", "EMVCo merchant-presented"
	if s := m.Scheme(); s != nil {
		r.Scheme, r.Operator = s.Name, s.Operator
	}
	r.MaskedCode = paycode.Mask(qr)
	online := e.cfg.Online()
	if err := e.commit(func(tx *store.Tx) error {
		n, err := tx.NextOrder()
		if err != nil {
			return err
		}
		r.Order = n
		if !online {
			r.Status, r.Offline, r.Reason = StatusRefused, true, "offline — the payment cannot be confirmed; ask for another method"
			if err := e.queueAttempt(tx, r); err != nil {
				return err
			}
			return putSale(tx, r)
		}
		r.Status, r.QR = StatusAuthorizing, qr
		seq, err := e.enqueue(tx, AuthRequest{Key: r.ID, AmountMinor: amountMinor, Currency: cur.Code, Kind: r.CodeKind,
			Scheme: r.Scheme, Operator: r.Operator, Code: qr, MaskedCode: r.MaskedCode, CreatedAt: now, Batch: r.BatchID})
		if err != nil {
			return err
		}
		r.PaySeq = seq
		return putSale(tx, r)
	}); err != nil {
		return Sale{}, err
	}
	if r.Status == StatusAuthorizing {
		e.pending[r.ID] = pending{status: StatusAuthorizing, deadline: now.Add(e.cfg.PresentTimeout), batch: r.BatchID}
		e.log.Info("merchant-presented sale waiting for payment", "id", r.ID, "scheme", r.Scheme, "amount_minor", amountMinor, "currency", cur.Code)
		e.cfg.Presented(r.Sale)
	} else {
		e.log.Warn("merchant-presented sale refused: offline", "id", r.ID)
		e.finished(r.Sale)
	}
	e.cfg.Kick()
	return r.Sale, nil
}

// voidPresented cancels a merchant-presented sale the customer may already have paid:
// a durable reversal makes sure they are not charged.
func (e *Engine) voidPresented(r *record) (Sale, error) {
	now, _ := e.now()
	r.UpdatedAt = now
	if err := e.commit(func(tx *store.Tx) error {
		if err := tx.Dequeue(r.PaySeq); err != nil {
			return err
		}
		if err := tx.Dequeue(r.QuerySeq); err != nil {
			return err
		}
		r.PaySeq, r.QuerySeq, r.QR = 0, 0, ""
		r.Status, r.Reason = StatusReversalPending, "cancelled by the clerk; a reversal is queued so the customer is not charged"
		seq, err := e.enqueue(tx, ReversalRequest{Key: r.ID, AmountMinor: r.AmountMinor, Currency: r.Currency, Scheme: r.Scheme, Reason: "cancelled by the clerk", At: now})
		if err != nil {
			return err
		}
		r.ReversalSeq = seq
		return putSale(tx, r)
	}); err != nil {
		return Sale{}, err
	}
	delete(e.pending, r.ID)
	e.log.Info("merchant-presented sale cancelled; reversal queued", "id", r.ID)
	e.cfg.Kick()
	return r.Sale, nil
}
