package payment

import "time"

// Outbox message kinds. They are the same words as the wire contract's kinds (package
// sync), which the daemon maps them to; payment does not import sync.
const (
	KindPayment  = "payment"
	KindQuery    = "query"
	KindReversal = "reversal"
	KindRefund   = "refund"
	KindAttempt  = "attempt"
	KindBatch    = "batch"
)

// Result statuses, as in the wire contract.
const (
	ResultApproved = "approved" // payment or refund authorized
	ResultDeclined = "declined" // payment, refund or reversal refused
	ResultUnknown  = "unknown"  // answer to a query: the cloud never saw the key
	ResultReversed = "reversed" // reversal done (or the original was never approved)
	ResultRecorded = "recorded" // attempt or batch stored by the cloud
)

// Message is something the engine puts into the outbox. Config.EncodeOutbox turns it
// into bytes in the wire format.
type Message interface {
	// MessageKind is one of the Kind constants.
	MessageKind() string
	// MessageKey is the idempotency key whose result finishes the message.
	MessageKey() string
}

// AuthRequest is what the engine asks the cloud to authorize. It carries the full
// code, so it only ever goes into the outbox and onto the wire, never into a log.
type AuthRequest struct {
	Key         string
	AmountMinor int64
	Currency    string
	Kind        string // paycode kind: wallet, emv_cpm
	Scheme      string
	Operator    string
	Code        string
	MaskedCode  string
	CreatedAt   time.Time
	Offline     bool   // stored offline: the clerk already let the customer go
	Batch       string // the settlement batch the sale belongs to (open when it was created)
}

// QueryRequest asks the cloud what became of an in-doubt sale's key.
type QueryRequest struct {
	Key     string
	AskedAt time.Time
}

// ReversalRequest undoes a sale whose outcome the terminal could not learn. The cloud
// must also refuse any later payment request with the same key.
type ReversalRequest struct {
	Key         string
	AmountMinor int64
	Currency    string
	Scheme      string
	Reason      string
	At          time.Time
}

// RefundRequest refunds (part of) an approved sale. Key is the refund's own key.
type RefundRequest struct {
	Key         string
	SaleKey     string
	AmountMinor int64
	Currency    string
	Scheme      string
	At          time.Time
	Batch       string // the settlement batch the refund belongs to (open when it was created)
}

// AttemptRecord is the audit record of a sale that never reached the payment network:
// declined locally, refused offline or cancelled. It carries only the masked code.
type AttemptRecord struct {
	Key         string
	Status      Status
	Reason      string
	AmountMinor int64
	Currency    string
	CodeKind    string
	Scheme      string
	MaskedCode  string
	Offline     bool
	CreatedAt   time.Time
	At          time.Time
}

// BatchClose reports a closed settlement batch with its totals.
type BatchClose struct {
	Key      string // the batch id
	Number   uint64
	OpenedAt time.Time
	ClosedAt time.Time
	Totals   []Total
}

func (m AuthRequest) MessageKind() string     { return KindPayment }
func (m AuthRequest) MessageKey() string      { return m.Key }
func (m QueryRequest) MessageKind() string    { return KindQuery }
func (m QueryRequest) MessageKey() string     { return m.Key }
func (m ReversalRequest) MessageKind() string { return KindReversal }
func (m ReversalRequest) MessageKey() string  { return m.Key }
func (m RefundRequest) MessageKind() string   { return KindRefund }
func (m RefundRequest) MessageKey() string    { return m.Key }
func (m AttemptRecord) MessageKind() string   { return KindAttempt }
func (m AttemptRecord) MessageKey() string    { return m.Key }
func (m BatchClose) MessageKind() string      { return KindBatch }
func (m BatchClose) MessageKey() string       { return m.Key }

// Result is the cloud's answer for one key and message kind.
type Result struct {
	Key    string
	Kind   string // empty means KindPayment
	Status string // one of the Result constants
	Reason string
}
