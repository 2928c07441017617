package payment

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// Status is where a sale stands.
type Status string

// Sale statuses. The clerk-facing meaning of each is in docs/sales.md.
const (
	StatusWaitingForCode  Status = "waiting_for_code" // created; scan the customer's code
	StatusAuthorizing     Status = "authorizing"      // committed and sent; waiting for the cloud
	StatusApproved        Status = "approved"         // paid
	StatusDeclined        Status = "declined"         // not paid (by the operator, or the code was unusable)
	StatusInDoubt         Status = "in_doubt"         // no answer in time; a status query is out
	StatusStoredOffline   Status = "stored_offline"   // accepted under a defer policy; forwarded later (merchant's risk)
	StatusReversalPending Status = "reversal_pending" // did not go through; a reversal is queued
	StatusReversed        Status = "reversed"         // did not go through; the cloud confirmed the reversal
	StatusReversalFailed  Status = "reversal_failed"  // the cloud refused the reversal: needs a person
	StatusRefused         Status = "refused"          // refused by this terminal: offline and the policy says refuse
	StatusCancelled       Status = "cancelled"        // cancelled before a code was scanned
)

// Final reports whether no further change can happen to a sale in this status
// (refunds aside).
func (s Status) Final() bool {
	switch s {
	case StatusApproved, StatusDeclined, StatusCancelled, StatusReversed, StatusReversalFailed, StatusRefused:
		return true
	}
	return false
}

// Sale is one sale as the clerk and the cash register see it.
type Sale struct {
	ID     string `json:"id"` // also the idempotency key sent to the cloud
	Status Status `json:"status"`
	// Flow is FlowMerchantPresented for a sale paid by the customer scanning QR;
	// empty for the customer-presented flow.
	Flow string `json:"flow,omitempty"`
	// QR is the dynamic EMVCo merchant-presented code to show or print (public
	// merchant data), while the sale waits for payment.
	QR          string `json:"qr,omitempty"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	Scheme      string `json:"scheme,omitempty"`
	Operator    string `json:"operator,omitempty"`
	MaskedCode  string `json:"masked_code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Order is the terminal's own strictly increasing record number: the true order
	// of events even when the wall clock jumped.
	Order uint64 `json:"order"`
	// ClockUnsynced flags a sale created before the system clock was synchronized:
	// its wall times may be wrong (the Pi has no real-time clock).
	ClockUnsynced bool `json:"clock_unsynced,omitempty"`
	// Offline is set when the sale was decided by the offline policy.
	Offline bool `json:"offline,omitempty"`
	// Expired flags a stored_offline sale older than its policy's max age: show it to
	// the clerk; it is still forwarded.
	Expired bool `json:"expired,omitempty"`
	// RefundedMinor is the sum of refunds approved or still pending against the sale.
	RefundedMinor int64 `json:"refunded_minor,omitempty"`
	// Refunds lists the ids of the sale's refunds.
	Refunds []string `json:"refunds,omitempty"`
	// BatchID is the settlement batch the sale belongs to: the one open when it was
	// created. Its totals count the sale once it is approved or stored offline. Empty
	// only for sales recorded by older versions before their approval.
	BatchID string `json:"batch_id,omitempty"`
	// Synced is set once the cloud has answered every message about this sale.
	Synced    bool      `json:"synced"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// record is a sale as stored: the sale plus engine bookkeeping. Each *Seq is the
// outbox entry still owed to the cloud for that kind of message (0: none).
type record struct {
	Sale
	CodeKind    string    `json:"code_kind,omitempty"`
	PaySeq      uint64    `json:"outbox_seq,omitempty"`
	QuerySeq    uint64    `json:"query_seq,omitempty"`
	ReversalSeq uint64    `json:"reversal_seq,omitempty"`
	AttemptSeq  uint64    `json:"attempt_seq,omitempty"`
	InDoubtAt   time.Time `json:"in_doubt_at,omitzero"`
	// Counted is set while the totals of batch BatchID include the sale (approved, or
	// stored offline and not yet answered).
	Counted bool `json:"counted,omitempty"`
}

// owes reports whether any message about the sale is still in the outbox.
func (r *record) owes() bool {
	return r.PaySeq != 0 || r.QuerySeq != 0 || r.ReversalSeq != 0 || r.AttemptSeq != 0
}

// newID returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits,
// so ids sort by creation time.
func newID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(b[0:6], ms[2:8])
	b[6] = 0x70 | b[6]&0x0f // version 7
	b[8] = 0x80 | b[8]&0x3f // variant 10
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// idTime returns the creation time encoded in a UUIDv7 id.
func idTime(id string) (time.Time, bool) {
	if !ValidID(id) {
		return time.Time{}, false
	}
	ms, err := strconv.ParseUint(id[0:8]+id[9:13], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}

// ValidID reports whether id has the shape of a sale id.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, r := range id {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return false
			}
		}
	}
	return true
}

// addMinor adds two amounts of minor units, failing on overflow.
func addMinor(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, ErrOverflow
	}
	return s, nil
}
