package sync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Version is the payload version this code writes and accepts (field "v").
const Version = 1

// MaxPayload bounds every payload this package decodes; larger ones are rejected.
const MaxPayload = 64 << 10

// TopicPrefix is the root of every Walletless topic.
const TopicPrefix = "walletless/v1/devices/"

// RequestTopic is where a device asks for payments. The device id is always the fourth level, so a broker ACL
// with a pattern (mosquitto's %c or %u) confines a device to its own subtree.
func RequestTopic(device string) string { return TopicPrefix + device + "/payments/request" }

// Outbox message kinds: what a device sends the cloud. Each is answered by a
// PaymentResult with the message's key on ResultTopic, and an outbox entry is finished
// only by that answer.
const (
	KindPayment  = "payment"  // PaymentRequest: authorize a sale
	KindQuery    = "query"    // status query for an in-doubt sale's key
	KindReversal = "reversal" // undo a sale whose outcome the device could not learn
	KindRefund   = "refund"   // refund (part of) an approved sale
	KindAttempt  = "attempt"  // audit record of a sale that never went online (declined locally, refused offline)
	KindBatch    = "batch"    // close of a settlement batch with its totals
)

var kindTopics = map[string]string{
	KindPayment:  "payments/request",
	KindQuery:    "payments/query",
	KindReversal: "payments/reversal",
	KindRefund:   "payments/refund",
	KindAttempt:  "audit/attempt",
	KindBatch:    "batches/close",
}

// UpTopic is the device → cloud topic for an outbox message kind.
func UpTopic(device, kind string) (string, error) {
	t, ok := kindTopics[kind]
	if !ok {
		return "", fmt.Errorf("sync: unknown message kind %q", kind)
	}
	return TopicPrefix + device + "/" + t, nil
}

// ResultTopic is where the cloud answers a device's payment requests.
func ResultTopic(device string) string { return TopicPrefix + device + "/payments/result" }

// StatusTopic carries the device's retained birth ("online") and will ("offline").
func StatusTopic(device string) string { return TopicPrefix + device + "/status" }

// AllRequests is the filter the cloud subscribes to (wrapped in $share/GROUP/ for load
// sharing between several gateways).
const AllRequests = TopicPrefix + "+/payments/request"

// DeviceFromTopic returns the device id of a topic under TopicPrefix.
func DeviceFromTopic(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, TopicPrefix)
	if !ok {
		return "", fmt.Errorf("sync: topic %q is not under %s", topic, TopicPrefix)
	}
	dev, _, ok := strings.Cut(rest, "/")
	if !ok || !ValidDeviceID(dev) {
		return "", fmt.Errorf("sync: topic %q has no valid device id", topic)
	}
	return dev, nil
}

// ValidDeviceID reports whether id can stand in a topic: 1-64 characters of
// [A-Za-z0-9._-].
func ValidDeviceID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

// PaymentRequest asks the cloud to authorize one sale. Device → cloud, QoS 1, not
// retained. Key is the idempotency key: resends carry the same key and the cloud must
// answer them with the result it gave the first time.
type PaymentRequest struct {
	V           int       `json:"v"`
	Key         string    `json:"key"`
	Device      string    `json:"device"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Kind        string    `json:"kind"`   // paycode kind: wallet, emv_cpm
	Scheme      string    `json:"scheme"` // e.g. alipay
	Operator    string    `json:"operator,omitempty"`
	Code        string    `json:"code"`        // the customer's one-time code: the credential the operator charges
	MaskedCode  string    `json:"masked_code"` // safe for logs
	CreatedAt   time.Time `json:"created_at"`
}

// Result statuses.
const (
	ResultApproved = "approved" // payment or refund authorized
	ResultDeclined = "declined" // payment, refund or reversal refused
	ResultUnknown  = "unknown"  // answer to a query: the cloud never saw this key
	ResultReversed = "reversed" // reversal done (or the original was never approved)
	ResultRecorded = "recorded" // attempt or batch stored by the cloud
)

// PaymentResult is the cloud's answer for one key, whatever the kind of message it
// answers. Cloud → device, QoS 1, not retained.
type PaymentResult struct {
	V         int       `json:"v"`
	Key       string    `json:"key"`
	Kind      string    `json:"kind,omitempty"` // the kind answered; empty means payment
	Status    string    `json:"status"`         // see the Result constants
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
}

// Status is the retained presence message. Session grows with every start of posd, so
// a consumer ignores a message whose Session is lower than one it has seen.
type Status struct {
	V       int       `json:"v"`
	Device  string    `json:"device"`
	State   string    `json:"state"` // online | offline
	Session uint64    `json:"session"`
	At      time.Time `json:"at,omitzero"`
	Version string    `json:"version,omitempty"`
}

// Decode errors.
var (
	ErrTooLarge   = errors.New("sync: payload too large")
	ErrBadVersion = errors.New("sync: unsupported payload version")
	ErrMalformed  = errors.New("sync: malformed payload")
)

// Decode parses one payload strictly into v: size-limited, unknown fields and trailing
// data rejected, version checked.
func Decode(payload []byte, v interface{ version() int }) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	if v.version() != Version {
		return fmt.Errorf("%w: %d", ErrBadVersion, v.version())
	}
	return nil
}

func (p *PaymentRequest) version() int { return p.V }
func (p *PaymentResult) version() int  { return p.V }
func (p *Status) version() int         { return p.V }

// Validate checks a decoded request's fields.
func (p *PaymentRequest) Validate() error {
	switch {
	case p.Key == "" || len(p.Key) > 64:
		return fmt.Errorf("%w: key missing or too long", ErrMalformed)
	case !ValidDeviceID(p.Device):
		return fmt.Errorf("%w: bad device id", ErrMalformed)
	case p.AmountMinor <= 0:
		return fmt.Errorf("%w: amount_minor must be positive", ErrMalformed)
	case len(p.Currency) != 3:
		return fmt.Errorf("%w: currency must be an ISO 4217 code", ErrMalformed)
	}
	return nil
}

// Validate checks a decoded result's fields.
func (p *PaymentResult) Validate() error {
	if p.Key == "" {
		return fmt.Errorf("%w: key missing", ErrMalformed)
	}
	switch p.Status {
	case ResultApproved, ResultDeclined, ResultUnknown, ResultReversed, ResultRecorded:
	default:
		return fmt.Errorf("%w: status %q", ErrMalformed, p.Status)
	}
	if _, ok := kindTopics[p.Kind]; p.Kind != "" && !ok {
		return fmt.Errorf("%w: kind %q", ErrMalformed, p.Kind)
	}
	return nil
}
