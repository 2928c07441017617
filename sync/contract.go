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

// HeartbeatTopic carries the device's periodic Heartbeat.
func HeartbeatTopic(device string) string { return TopicPrefix + device + "/heartbeat" }

// AllRequests is the filter the cloud subscribes to for payment requests (wrapped in
// $share/GROUP/ for load sharing between several gateways).
const AllRequests = TopicPrefix + "+/payments/request"

// CloudFilters are the filters a cloud subscribes to (each wrapped in $share/GROUP/):
// one per outbox kind and one for bundles, so a cloud never receives its own results.
func CloudFilters() []string {
	out := make([]string, 0, len(kindTopics)+1)
	for _, k := range Kinds() {
		out = append(out, TopicPrefix+"+/"+kindTopics[k])
	}
	return append(out, TopicPrefix+"+/"+bundleTopic)
}

// Kinds lists the outbox message kinds in a fixed order.
func Kinds() []string {
	return []string{KindPayment, KindQuery, KindReversal, KindRefund, KindAttempt, KindBatch}
}

// KindFromTopic returns the outbox kind a device → cloud topic carries.
func KindFromTopic(topic string) (string, error) {
	dev, err := DeviceFromTopic(topic)
	if err != nil {
		return "", err
	}
	rest := strings.TrimPrefix(topic, TopicPrefix+dev+"/")
	for k, t := range kindTopics {
		if t == rest {
			return k, nil
		}
	}
	return "", fmt.Errorf("sync: topic %q carries no device message", topic)
}

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
	Kind        string    `json:"kind,omitempty"`   // paycode kind: wallet, emv_cpm; optional
	Scheme      string    `json:"scheme,omitempty"` // e.g. alipay; optional (unidentified)
	Operator    string    `json:"operator,omitempty"`
	Code        string    `json:"code"`        // the customer's one-time code: the credential the operator charges
	MaskedCode  string    `json:"masked_code"` // safe for logs
	CreatedAt   time.Time `json:"created_at"`
	// Offline is set on a sale the device stored offline under its offline policy:
	// the customer has left with the goods and the request arrives whenever the
	// network returns, so the cloud's staleness rule does not apply to it. Omitted
	// (false) for a sale authorized online.
	Offline bool `json:"offline,omitempty"`
	// Batch is the id of the settlement batch the sale belongs to (the one open on the
	// device when the sale was created). Optional: older devices leave it out, and the
	// cloud then places the sale by CreatedAt (see BatchClose).
	Batch string `json:"batch,omitempty"`
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

// ErrInvalidResult marks a well-formed result whose fields are not acceptable.
var ErrInvalidResult = errors.New("sync: invalid result")

// MaxBatchResults bounds the results in one ResultBatch (well inside MaxPayload).
const MaxBatchResults = 200

// ResultBatch carries several results for one device in one message on ResultTopic,
// so a cloud answering a window of requests does not pay one MQTT round trip per
// result. A device accepts a single PaymentResult and a ResultBatch alike.
type ResultBatch struct {
	V       int             `json:"v"`
	Results []PaymentResult `json:"results"`
}

// DecodeResults parses a message on ResultTopic: one PaymentResult or a ResultBatch.
// It returns the valid results and one error per invalid element (a malformed
// element does not spoil its valid neighbours); a malformed message gives no results
// and its error.
func DecodeResults(payload []byte) ([]PaymentResult, []error) {
	var probe struct {
		Results json.RawMessage `json:"results"`
	}
	if len(payload) <= MaxPayload && json.Unmarshal(payload, &probe) == nil && probe.Results != nil {
		var b ResultBatch
		if err := Decode(payload, &b); err != nil {
			return nil, []error{err}
		}
		if len(b.Results) > MaxBatchResults {
			return nil, []error{fmt.Errorf("%w: %d results in one batch (at most %d)", ErrMalformed, len(b.Results), MaxBatchResults)}
		}
		out := make([]PaymentResult, 0, len(b.Results))
		var errs []error
		for _, r := range b.Results {
			if r.V == 0 {
				r.V = b.V
			}
			if r.V != Version {
				errs = append(errs, fmt.Errorf("%w: %d", ErrBadVersion, r.V))
				continue
			}
			if err := r.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidResult, err))
				continue
			}
			out = append(out, r)
		}
		return out, errs
	}
	var r PaymentResult
	if err := Decode(payload, &r); err != nil {
		return nil, []error{err}
	}
	if err := r.Validate(); err != nil {
		return nil, []error{fmt.Errorf("%w: %w", ErrInvalidResult, err)}
	}
	return []PaymentResult{r}, nil
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
	Groups  []string  `json:"groups,omitempty"` // the device's fleet groups (fleet.groups)
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
func (p *ResultBatch) version() int    { return p.V }
func (p *Status) version() int         { return p.V }
func (p *QueryRequest) version() int   { return p.V }
func (p *ReversalRequest) version() int {
	return p.V
}
func (p *RefundRequest) version() int { return p.V }
func (p *AttemptRecord) version() int { return p.V }
func (p *BatchClose) version() int    { return p.V }
func (p *Heartbeat) version() int     { return p.V }

// Validate checks a decoded request's fields.
func (p *PaymentRequest) Validate() error {
	switch {
	case !validKey(p.Key):
		return fmt.Errorf("%w: key missing, too long or not printable ASCII", ErrMalformed)
	case !ValidDeviceID(p.Device):
		return fmt.Errorf("%w: bad device id", ErrMalformed)
	case p.AmountMinor <= 0:
		return fmt.Errorf("%w: amount_minor must be positive", ErrMalformed)
	case !validCurrency(p.Currency):
		return fmt.Errorf("%w: currency must be an ISO 4217 code", ErrMalformed)
	case p.Batch != "" && !validKey(p.Batch):
		return fmt.Errorf("%w: batch too long or not printable ASCII", ErrMalformed)
	case p.CreatedAt.IsZero():
		// Required: the cloud's staleness rule reads it.
		return fmt.Errorf("%w: created_at missing", ErrMalformed)
	}
	return nil
}

// Validate checks a decoded result's fields.
func (p *PaymentResult) Validate() error {
	if !validKey(p.Key) {
		return fmt.Errorf("%w: key missing or malformed", ErrMalformed)
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

// validKey reports whether k can be an idempotency key: 1-64 printable ASCII
// characters without spaces.
func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// validCurrency reports whether c looks like an ISO 4217 alphabetic code.
func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

func checkCommon(key, device string) error {
	switch {
	case !validKey(key):
		return fmt.Errorf("%w: key missing, too long or not printable ASCII", ErrMalformed)
	case !ValidDeviceID(device):
		return fmt.Errorf("%w: bad device id", ErrMalformed)
	}
	return nil
}

// QueryRequest asks the cloud what became of a key (an in-doubt sale). Device →
// cloud on payments/query, QoS 1, not retained; the outbox entry's key is Key. The
// cloud answers on ResultTopic with Kind "query", the same Key and the stored
// status (approved, declined, reversed), or "unknown" when it never saw the key.
// A query changes nothing in the cloud.
type QueryRequest struct {
	V       int       `json:"v"`
	Key     string    `json:"key"`
	Device  string    `json:"device"`
	AskedAt time.Time `json:"asked_at"`
}

// Validate checks a decoded query's fields.
func (p *QueryRequest) Validate() error { return checkCommon(p.Key, p.Device) }

// ReversalRequest undoes a sale whose outcome the device could not learn (or that
// the clerk voided). Device → cloud on payments/reversal, QoS 1, not retained; the
// outbox entry's key is Key, the sale's key. The cloud marks the key reversed in its
// ledger: an approved sale is voided, a key it never saw is recorded as reversed so a
// late payment request with that key is refused. The answer is Kind "reversal", Key,
// status "reversed" (or "declined" when the sale cannot be reversed any more, for
// example because it was refunded).
type ReversalRequest struct {
	V           int       `json:"v"`
	Key         string    `json:"key"`
	Device      string    `json:"device"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Scheme      string    `json:"scheme,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Validate checks a decoded reversal's fields.
func (p *ReversalRequest) Validate() error {
	if err := checkCommon(p.Key, p.Device); err != nil {
		return err
	}
	if p.AmountMinor < 0 || (p.Currency != "" && !validCurrency(p.Currency)) || len(p.Reason) > 200 {
		return fmt.Errorf("%w: bad amount, currency or reason", ErrMalformed)
	}
	return nil
}

// RefundRequest refunds all or part of an approved sale. Device → cloud on
// payments/refund, QoS 1, not retained. Key is the refund's own idempotency key;
// OriginalKey is the sale's. The cloud approves when the original is an approved,
// unreversed sale of the same device and currency and the refunds approved so far plus
// this one do not exceed its amount. The answer is Kind "refund" with the refund's
// Key.
type RefundRequest struct {
	V           int       `json:"v"`
	Key         string    `json:"key"`
	Device      string    `json:"device"`
	OriginalKey string    `json:"original_key"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// Batch is the id of the settlement batch the refund belongs to (the one open on
	// the device when the refund was created); optional as in PaymentRequest.
	Batch string `json:"batch,omitempty"`
}

// Validate checks a decoded refund's fields.
func (p *RefundRequest) Validate() error {
	if err := checkCommon(p.Key, p.Device); err != nil {
		return err
	}
	switch {
	case !validKey(p.OriginalKey) || p.OriginalKey == p.Key:
		return fmt.Errorf("%w: original_key missing or equal to key", ErrMalformed)
	case p.AmountMinor <= 0:
		return fmt.Errorf("%w: amount_minor must be positive", ErrMalformed)
	case !validCurrency(p.Currency):
		return fmt.Errorf("%w: currency must be an ISO 4217 code", ErrMalformed)
	case len(p.Reason) > 200:
		return fmt.Errorf("%w: reason too long", ErrMalformed)
	case p.Batch != "" && !validKey(p.Batch):
		return fmt.Errorf("%w: batch too long or not printable ASCII", ErrMalformed)
	}
	return nil
}

// Attempt outcomes: why a sale never went online.
const (
	AttemptRefusedOffline = "refused_offline"  // offline policy refuse
	AttemptDeclinedLocal  = "declined_locally" // e.g. limits, unknown code
	AttemptCancelled      = "cancelled"        // cancelled before authorization
	AttemptStoredOffline  = "stored_offline"   // deferred under the offline policy
)

// AttemptRecord is the audit record of a sale attempt that was not (or not yet) sent
// for authorization. Device → cloud on audit/attempt, QoS 1, not retained. It never
// carries the full payment code, only MaskedCode. The cloud stores it once per Key and
// answers Kind "attempt", status "recorded".
type AttemptRecord struct {
	V           int       `json:"v"`
	Key         string    `json:"key"`
	Device      string    `json:"device"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Kind        string    `json:"kind,omitempty"`
	Scheme      string    `json:"scheme,omitempty"`
	MaskedCode  string    `json:"masked_code,omitempty"`
	Outcome     string    `json:"outcome"` // see the Attempt constants; other short words are kept as they are
	Offline     bool      `json:"offline,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Validate checks a decoded attempt's fields.
func (p *AttemptRecord) Validate() error {
	if err := checkCommon(p.Key, p.Device); err != nil {
		return err
	}
	switch {
	case p.AmountMinor < 0:
		return fmt.Errorf("%w: negative amount", ErrMalformed)
	case p.Currency != "" && !validCurrency(p.Currency):
		return fmt.Errorf("%w: currency must be an ISO 4217 code", ErrMalformed)
	case p.Outcome == "" || len(p.Outcome) > 32 || len(p.Reason) > 200 || len(p.MaskedCode) > 64:
		return fmt.Errorf("%w: outcome missing or fields too long", ErrMalformed)
	}
	return nil
}

// BatchTotal is one line of a settlement batch: the approved, unreversed sales and
// approved refunds of one scheme and currency.
type BatchTotal struct {
	Scheme       string `json:"scheme"`
	Currency     string `json:"currency"`
	SalesCount   int64  `json:"sales_count"`
	SalesMinor   int64  `json:"sales_minor"`
	RefundsCount int64  `json:"refunds_count"`
	RefundsMinor int64  `json:"refunds_minor"`
}

// BatchClose closes a settlement batch. Device → cloud on batches/close, QoS 1, not
// retained; Key is the batch's id. The batch holds the device's approved sales and
// refunds whose request carried Batch == Key; a request without Batch (an older
// device) belongs to it when created (device clock) in [OpenedAt, ClosedAt). The
// cloud computes the same totals from its ledger and answers Kind "batch" with status
// "recorded" when they match or "declined" with the first mismatches in Reason.
// Either way it stores the batch once.
type BatchClose struct {
	V        int          `json:"v"`
	Key      string       `json:"key"`
	Device   string       `json:"device"`
	Number   uint64       `json:"number,omitempty"` // the device's batch counter
	OpenedAt time.Time    `json:"opened_at"`
	ClosedAt time.Time    `json:"closed_at"`
	Totals   []BatchTotal `json:"totals"`
}

// Validate checks a decoded batch's fields.
func (p *BatchClose) Validate() error {
	if err := checkCommon(p.Key, p.Device); err != nil {
		return err
	}
	if p.ClosedAt.Before(p.OpenedAt) || len(p.Totals) > 256 {
		return fmt.Errorf("%w: closed_at before opened_at or too many totals", ErrMalformed)
	}
	seen := map[[2]string]bool{}
	for _, t := range p.Totals {
		k := [2]string{t.Scheme, t.Currency}
		if seen[k] || !validCurrency(t.Currency) || len(t.Scheme) > 32 || t.SalesCount < 0 || t.SalesMinor < 0 || t.RefundsCount < 0 || t.RefundsMinor < 0 {
			return fmt.Errorf("%w: bad or repeated total %s/%s", ErrMalformed, t.Scheme, t.Currency)
		}
		seen[k] = true
	}
	return nil
}

// Heartbeat is the device's periodic health report. Device → cloud on heartbeat, QoS
// 1, not retained (a stale heartbeat must not pose as current).
type Heartbeat struct {
	V                int       `json:"v"`
	Device           string    `json:"device"`
	Session          uint64    `json:"session"`
	At               time.Time `json:"at"`
	QueueDepth       int       `json:"queue_depth"`        // outbox entries not yet answered; -1 unknown
	InFlight         int       `json:"in_flight"`          // published and waiting for a result
	OldestUnsyncedMS int64     `json:"oldest_unsynced_ms"` // age of the oldest outbox entry; 0 when empty
	Firmware         string    `json:"firmware,omitempty"`
	ConfigVersion    string    `json:"config_version,omitempty"` // the fleet config version in force
	Groups           []string  `json:"groups,omitempty"`         // the device's fleet groups
	Scanner          string    `json:"scanner,omitempty"`
	Printer          string    `json:"printer,omitempty"`
}

// DecodeUp decodes and validates a device → cloud payload of kind, returning a
// pointer to the kind's type (*PaymentRequest, *QueryRequest, …) and the key and
// device it names.
func DecodeUp(kind string, payload []byte) (msg any, key, device string, err error) {
	switch kind {
	case KindPayment:
		var p PaymentRequest
		if err = Decode(payload, &p); err == nil {
			err = checkRequired(payload, &p)
		}
		if err == nil {
			err = p.Validate()
		}
		return &p, p.Key, p.Device, err
	case KindQuery:
		var p QueryRequest
		if err = Decode(payload, &p); err == nil {
			err = checkRequired(payload, &p)
		}
		if err == nil {
			err = p.Validate()
		}
		return &p, p.Key, p.Device, err
	case KindReversal:
		var p ReversalRequest
		if err = Decode(payload, &p); err == nil {
			err = checkRequired(payload, &p)
		}
		if err == nil {
			err = p.Validate()
		}
		return &p, p.Key, p.Device, err
	case KindRefund:
		var p RefundRequest
		if err = Decode(payload, &p); err == nil {
			err = checkRequired(payload, &p)
		}
		if err == nil {
			err = p.Validate()
		}
		return &p, p.Key, p.Device, err
	case KindAttempt:
		var p AttemptRecord
		if err = Decode(payload, &p); err == nil {
			err = checkRequired(payload, &p)
		}
		if err == nil {
			err = p.Validate()
		}
		return &p, p.Key, p.Device, err
	case KindBatch:
		var p BatchClose
		if err = Decode(payload, &p); err == nil {
			err = checkRequired(payload, &p)
		}
		if err == nil {
			err = p.Validate()
		}
		return &p, p.Key, p.Device, err
	}
	return nil, "", "", fmt.Errorf("sync: unknown message kind %q", kind)
}
