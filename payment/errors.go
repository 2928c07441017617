package payment

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned to the API. Each is a client error with a clear message unless noted.
var (
	// ErrNotFound: no sale, refund or batch has that id.
	ErrNotFound = errors.New("payment: not found")
	// ErrBadAmount: the amount is not a positive integer of minor units within limits.
	ErrBadAmount = errors.New("payment: amount_minor must be a positive integer of minor units")
	// ErrCurrency: not an ISO 4217 currency.
	ErrCurrency = errors.New("payment: unknown ISO 4217 currency")
	// ErrCurrencyNotAccepted: a known currency that this terminal's merchant QR
	// (merchant.emv_qr) does not take.
	ErrCurrencyNotAccepted = errors.New("payment: currency not accepted")
	// ErrBusy: only one sale waits for a code at a time.
	ErrBusy = errors.New("payment: another sale is waiting for a code; cancel it first")
	// ErrNotWaiting: the sale is past the point where it can be cancelled or scanned.
	ErrNotWaiting = errors.New("payment: sale is no longer waiting for a code")
	// ErrNoSale: a code was scanned while no sale was open.
	ErrNoSale = errors.New("payment: no sale is waiting for a code; start a sale first")
	// ErrAuthorizing: a second code was scanned while a sale is being authorized.
	ErrAuthorizing = errors.New("payment: a sale is already authorizing; the second scan was ignored")
	// ErrCodeReused: this one-time code was already used for a payment.
	ErrCodeReused = errors.New("payment: this one-time code was already used; ask the customer to refresh the code in their app")
	// ErrNotRefundable: refunds apply only to approved sales.
	ErrNotRefundable = errors.New("payment: only an approved sale can be refunded")
	// ErrRefundTooLarge: the refunds would exceed the original amount.
	ErrRefundTooLarge = errors.New("payment: refunds would exceed the original amount")
	// ErrNoMerchantCode: merchant-presented sales need the merchant's EMVCo template.
	ErrNoMerchantCode = errors.New("payment: merchant-presented codes are not configured on this terminal")
	// ErrOverflow: a sum of amounts does not fit in int64 minor units.
	ErrOverflow = errors.New("payment: amount overflow")
	// ErrBatchBusy: the open batch still has sales or refunds whose outcome is not
	// known, so its totals are not final; CloseBatch returns a *BatchBusyError that
	// says which and for how long.
	ErrBatchBusy = errors.New("payment: the batch still has sales or refunds in progress")
	// ErrStopped: the engine is not running (a server error).
	ErrStopped = errors.New("payment: engine is not running")

	errStoreFailed = errors.New("payment: could not store the sale")
)

// BatchBusyError is CloseBatch's refusal while sales or refunds of the open batch are
// still in progress. errors.Is(err, ErrBatchBusy) holds for it.
type BatchBusyError struct {
	Waiting     int // sales waiting for a code: scan the code or cancel the sale
	Authorizing int // sales authorizing (customer- or merchant-presented)
	InDoubt     int // sales in doubt: the status query is out
	Refunds     int // refunds waiting for the cloud's answer
	// Within bounds the authorizing and in-doubt sales: the auth (or present) and
	// query timeouts settle each of them by then at the latest.
	Within time.Duration
}

// Is makes errors.Is(err, ErrBatchBusy) true.
func (e *BatchBusyError) Is(target error) bool { return target == ErrBatchBusy }

func (e *BatchBusyError) Error() string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	var parts []string
	if n := e.Authorizing + e.InDoubt; n > 0 {
		parts = append(parts, fmt.Sprintf("%s still authorizing or in doubt (the timeouts settle %s within %s at most)",
			plural(n, "sale of this batch is", "sales of this batch are"), map[bool]string{true: "it", false: "them"}[n == 1], e.Within))
	}
	if e.Waiting > 0 {
		parts = append(parts, plural(e.Waiting, "sale of this batch is", "sales of this batch are")+" waiting for a code (scan the code or cancel the sale)")
	}
	if e.Refunds > 0 {
		parts = append(parts, plural(e.Refunds, "refund of this batch is", "refunds of this batch are")+" waiting for the cloud's answer (refunds have no timeout: they stay pending while the terminal is offline)")
	}
	return "payment: cannot close the batch yet: " + strings.Join(parts, "; ") + "; close again when they finish"
}
