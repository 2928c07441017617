package payment

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// Status is where a sale stands.
type Status string

// Sale statuses.
const (
	StatusWaitingForCode Status = "waiting_for_code"
	StatusAuthorizing    Status = "authorizing"
	StatusApproved       Status = "approved"
	StatusDeclined       Status = "declined"
	StatusInDoubt        Status = "in_doubt"
	StatusStoredOffline  Status = "stored_offline"
	StatusCancelled      Status = "cancelled"
)

// Final reports whether no further change can happen to a sale in this status.
func (s Status) Final() bool {
	return s == StatusApproved || s == StatusDeclined || s == StatusCancelled
}

// Sale is one sale as the clerk and the cash register see it.
type Sale struct {
	ID          string    `json:"id"` // also the idempotency key sent to the cloud
	Status      Status    `json:"status"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Scheme      string    `json:"scheme,omitempty"`
	Operator    string    `json:"operator,omitempty"`
	MaskedCode  string    `json:"masked_code,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// record is a sale as stored: the sale plus engine bookkeeping.
type record struct {
	Sale
	OutboxSeq uint64 `json:"outbox_seq,omitempty"`
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
