package payment

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

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

// MaxMerchantCodeLen bounds the merchant's static code (merchant.emv_qr): an EMVCo
// merchant-presented payload is at most 512 characters.
const MaxMerchantCodeLen = 512

// ParseMerchantCode reads the merchant's static EMVCo merchant-presented QR (the
// payload their acquirer issued, as on the counter sticker) into the template Present
// builds each sale's dynamic code from. It is strict: the CRC must match, the code must
// name at least one merchant account and a known ISO 4217 currency (id 53), and must
// not carry an amount (id 54), since posd sets the amount of each sale. When the code
// has no terminal label (62.07), terminal (clipped to 25 characters) becomes one; ""
// adds none. The returned template is checked by building a code from it, so Present
// cannot fail on it later. The template keeps every other field of the code
// (accounts, MCC, name, city, country, language template, unknown ids); only the field
// order becomes EMVCo's canonical one. Errors start with "payment: merchant QR".
func ParseMerchantCode(payload, terminal string) (*paycode.MPM, error) {
	switch {
	case payload == "":
		return nil, errors.New("payment: merchant QR: empty")
	case len(payload) > MaxMerchantCodeLen:
		return nil, fmt.Errorf("payment: merchant QR: %d bytes, longer than the %d an EMVCo code can hold", len(payload), MaxMerchantCodeLen)
	case strings.TrimSpace(payload) != payload:
		return nil, errors.New("payment: merchant QR: starts or ends with white space (copy the payload exactly)")
	}
	switch res, err := paycode.Identify(payload); res.Detected {
	case paycode.KindEMVMPM:
	case "":
		return nil, fmt.Errorf("payment: merchant QR: not an EMVCo merchant-presented code (it starts with 000201): %w", err)
	default:
		// Never echo it: a customer's code is a payment credential.
		return nil, fmt.Errorf("payment: merchant QR: this is a customer's payment code (%s), not the shop's EMVCo merchant-presented QR", res.Detected)
	}
	m, _, err := paycode.Decode(payload)
	if err != nil {
		return nil, fmt.Errorf("payment: merchant QR: %w", err)
	}
	if m.Amount != "" {
		return nil, fmt.Errorf("payment: merchant QR: carries a fixed amount (id 54: %s); use the shop's static code without an amount, posd sets the amount of each sale: %w", m.Amount, paycode.ErrAmount)
	}
	m.Order = nil
	if _, ok := m.AdditionalField(paycode.AddTerminalLabel); !ok && terminal != "" {
		m.Additional = append(m.Additional, paycode.Field{ID: paycode.AddTerminalLabel, Value: clipRunes(terminal, 25)})
	}
	cur, _ := paycode.LookupCurrency(m.Currency) // Decode checked it
	if _, err := PresentCode(&m, 1, cur.Code, strings.Repeat("0", 25)); err != nil {
		return nil, fmt.Errorf("payment: merchant QR: no dynamic code can be built from it: %w", err)
	}
	return &m, nil
}

// PresentCode builds the dynamic code of one merchant-presented sale from template:
// point of initiation 12, the amount (id 54) and currency (id 53), and reference as
// the reference label (62.05, replacing any); everything else of the template is kept
// and the CRC is computed afresh. A currency other than the one the template fixes is
// refused with ErrCurrencyNotAccepted.
func PresentCode(template *paycode.MPM, amountMinor int64, currency, reference string) (string, error) {
	if amountMinor <= 0 || amountMinor > MaxAmountMinor {
		return "", ErrBadAmount
	}
	cur, ok := paycode.LookupCurrency(strings.ToUpper(currency))
	if !ok || len(currency) != 3 {
		return "", fmt.Errorf("%w: %q", ErrCurrency, currency)
	}
	if err := templateCurrency(template, cur); err != nil {
		return "", err
	}
	amount := paycode.FormatAmount(amountMinor, cur)
	if len(amount) > 13 {
		return "", fmt.Errorf("%w: %s %s does not fit the 13 characters of an EMVCo QR amount", ErrBadAmount, amount, cur.Code)
	}
	m := *template
	m.PointOfInitiation = paycode.PointDynamic
	m.Currency, m.Amount = cur.Numeric, amount
	m.Additional = make([]paycode.Field, 0, len(template.Additional)+1)
	for _, f := range template.Additional {
		if f.ID != paycode.AddReferenceLabel {
			m.Additional = append(m.Additional, f)
		}
	}
	m.Additional = append(m.Additional, paycode.Field{ID: paycode.AddReferenceLabel, Value: reference})
	qr, err := paycode.Build(m)
	if err != nil {
		return "", fmt.Errorf("payment: merchant code template: %w", err)
	}
	return qr, nil
}

// templateCurrency refuses a sale in another currency than the template fixes.
func templateCurrency(template *paycode.MPM, cur paycode.Currency) error {
	if template.Currency == "" || template.Currency == cur.Numeric {
		return nil
	}
	fixed := template.Currency
	if c, ok := paycode.LookupCurrency(fixed); ok {
		fixed = c.Code
	}
	return fmt.Errorf("%w: this terminal's merchant QR (merchant.emv_qr) takes %s only, not %s", ErrCurrencyNotAccepted, fixed, cur.Code)
}

// clipRunes shortens s to at most n runes.
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// Present starts a merchant-presented sale: it builds a dynamic EMVCo QR from
// Config.MerchantCode with the amount and the sale's reference (PresentCode), commits
// the sale with its payment request (kind emv_mpm, carrying the public QR) and returns
// the sale with the QR to show or print. The sale is authorizing until the cloud
// reports the customer's payment; without an answer within Config.PresentTimeout it
// goes in doubt like any other sale. Offline, it is refused: nobody could tell the
// terminal that the customer paid. A currency other than the one the template fixes
// is refused with ErrCurrencyNotAccepted before anything is stored.
func (e *Engine) Present(ctx context.Context, amountMinor int64, currency string) (Sale, error) {
	if amountMinor <= 0 || amountMinor > MaxAmountMinor {
		return Sale{}, ErrBadAmount
	}
	cur, ok := paycode.LookupCurrency(strings.ToUpper(currency))
	if !ok || len(currency) != 3 {
		return Sale{}, fmt.Errorf("%w: %q", ErrCurrency, currency)
	}
	if e.cfg.MerchantCode == nil {
		return Sale{}, fmt.Errorf("%w: a technician sets merchant.emv_qr in posd's configuration to the shop's static EMVCo QR (docs/sales.md)", ErrNoMerchantCode)
	}
	if err := templateCurrency(e.cfg.MerchantCode, cur); err != nil {
		return Sale{}, err
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
	qr, err := PresentCode(e.cfg.MerchantCode, amountMinor, cur.Code, referenceLabel(r.ID))
	if err != nil {
		return Sale{}, err
	}
	r.Scheme, r.Operator = "emvco", "EMVCo merchant-presented"
	if s := e.cfg.MerchantCode.Scheme(); s != nil {
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
