package sync

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestDecodeUpRefusesMissingRequiredFields: a device → cloud payload without one of
// its required fields is malformed (docs/protocol.md: "every other field is required")
// even though Go's decoder would leave it at its zero value; the optional ones may go.
func TestDecodeUpRefusesMissingRequiredFields(t *testing.T) {
	now := time.Now().UTC()
	msgs := map[string]any{
		KindPayment:  PaymentRequest{V: 1, Key: "k", Device: "d", AmountMinor: 1, Currency: "KRW", Kind: "wallet", Scheme: "alipay", Code: "1234", MaskedCode: "…1234", CreatedAt: now},
		KindQuery:    QueryRequest{V: 1, Key: "k", Device: "d", AskedAt: now},
		KindReversal: ReversalRequest{V: 1, Key: "k", Device: "d", AmountMinor: 1, Currency: "KRW", Scheme: "alipay", Reason: "r", CreatedAt: now},
		KindRefund:   RefundRequest{V: 1, Key: "k", Device: "d", OriginalKey: "o", AmountMinor: 1, Currency: "KRW", Reason: "r", CreatedAt: now},
		KindAttempt:  AttemptRecord{V: 1, Key: "k", Device: "d", AmountMinor: 1, Currency: "KRW", Outcome: "cancelled", Reason: "r", CreatedAt: now},
		KindBatch:    BatchClose{V: 1, Key: "k", Device: "d", OpenedAt: now, ClosedAt: now, Totals: []BatchTotal{}},
	}
	for kind, m := range msgs {
		raw, _ := json.Marshal(m)
		if _, _, _, err := DecodeUp(kind, raw); err != nil {
			t.Fatalf("%s: the full payload is refused: %v", kind, err)
		}
		var fields map[string]json.RawMessage
		json.Unmarshal(raw, &fields)
		required := map[string]bool{}
		for _, r := range requiredFields(typeOf(m)) {
			required[r] = true
		}
		for name := range fields {
			less := map[string]json.RawMessage{}
			for k, v := range fields {
				if k != name {
					less[k] = v
				}
			}
			b, _ := json.Marshal(less)
			_, _, _, err := DecodeUp(kind, b)
			if required[name] && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadVersion) {
				t.Errorf("%s without required %s: %v, want ErrMalformed", kind, name, err)
			}
			if !required[name] && err != nil {
				t.Errorf("%s without optional %s refused: %v", kind, name, err)
			}
		}
	}
}

func typeOf(v any) reflect.Type { return reflect.TypeOf(v) }
