package payment

import "errors"

// Errors returned to the API. Each is a client error with a clear message unless noted.
var (
	// ErrNotFound: no sale, refund or batch has that id.
	ErrNotFound = errors.New("payment: not found")
	// ErrBadAmount: the amount is not a positive integer of minor units within limits.
	ErrBadAmount = errors.New("payment: amount_minor must be a positive integer of minor units")
	// ErrCurrency: not an ISO 4217 currency.
	ErrCurrency = errors.New("payment: unknown ISO 4217 currency")
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
	// ErrStopped: the engine is not running (a server error).
	ErrStopped = errors.New("payment: engine is not running")

	errStoreFailed = errors.New("payment: could not store the sale")
)
