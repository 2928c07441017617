package daemon

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/payment"
	wsync "github.com/walletless/walletless/sync"
)

// paymentSettings are the sale engine's settings that config.Config does not carry
// yet. They are filled from defaults here, in one place, until the configuration
// schema grows the fields (payment.query_timeout, payment.present_timeout,
// payment.offline, payment.offline_after, payment.code_reuse_window,
// payment.prune_after, merchant.emv_template); see docs/sales.md. The demo gets a
// made-up merchant account so the merchant-presented flow can be tried.
type paymentSettings struct {
	MerchantCode    *paycode.MPM
	QueryTimeout    time.Duration
	Offline         payment.Policies
	CodeReuseWindow time.Duration
	PruneAfter      time.Duration
}

func paymentDefaults(cfg config.Config, demo bool) paymentSettings {
	var mc *paycode.MPM
	if demo {
		// A demo merchant account: posgw approves the request as if the customer paid.
		mc = &paycode.MPM{
			MerchantAccounts: []paycode.MerchantAccount{{ID: "26", GUI: "com.walletless.demo", Fields: []paycode.Field{{ID: "01", Value: cfg.DeviceID}}}},
			MCC:              "5411", Country: "KR", MerchantName: clip(cfg.Merchant.Name, 25), MerchantCity: "SEOUL",
			Additional: []paycode.Field{{ID: paycode.AddTerminalLabel, Value: clip(cfg.DeviceID, 25)}},
		}
		if mc.MerchantName == "" {
			mc.MerchantName = "Walletless demo"
		}
	}
	return paymentSettings{
		MerchantCode: mc,
		// The query gets as long as the payment request had.
		QueryTimeout: time.Duration(cfg.Payment.AuthTimeout),
		// Refuse for every scheme: one-time wallet codes and EMVCo CPM cryptograms
		// cannot be authorized later by anyone.
		Offline:         payment.Policies{Default: payment.OfflinePolicy{Action: payment.Refuse}},
		CodeReuseWindow: 24 * time.Hour,
		PruneAfter:      90 * 24 * time.Hour,
	}
}

// encodeOutbox writes the engine's messages in the wire format of package sync.
func encodeOutbox(device string) func(payment.Message) ([]byte, error) {
	return func(m payment.Message) ([]byte, error) {
		var body any
		switch a := m.(type) {
		case payment.AuthRequest:
			body = wsync.PaymentRequest{
				V: wsync.Version, Key: a.Key, Device: device, AmountMinor: a.AmountMinor, Currency: a.Currency,
				Kind: a.Kind, Scheme: a.Scheme, Operator: a.Operator, Code: a.Code, MaskedCode: a.MaskedCode,
				CreatedAt: a.CreatedAt,
			}
		case payment.QueryRequest:
			body = wsync.QueryRequest{V: wsync.Version, Key: a.Key, Device: device, AskedAt: a.AskedAt}
		case payment.ReversalRequest:
			body = wsync.ReversalRequest{V: wsync.Version, Key: a.Key, Device: device, AmountMinor: a.AmountMinor,
				Currency: a.Currency, Scheme: a.Scheme, Reason: clip(a.Reason, 200), CreatedAt: a.At}
		case payment.RefundRequest:
			body = wsync.RefundRequest{V: wsync.Version, Key: a.Key, Device: device, OriginalKey: a.SaleKey,
				AmountMinor: a.AmountMinor, Currency: a.Currency, CreatedAt: a.At}
		case payment.AttemptRecord:
			body = wsync.AttemptRecord{V: wsync.Version, Key: a.Key, Device: device, AmountMinor: a.AmountMinor,
				Currency: a.Currency, Kind: a.CodeKind, Scheme: a.Scheme, MaskedCode: a.MaskedCode,
				Outcome: attemptOutcome(a.Status), Offline: a.Offline, Reason: clip(a.Reason, 200), CreatedAt: a.CreatedAt}
		case payment.BatchClose:
			totals := make([]wsync.BatchTotal, len(a.Totals))
			for i, t := range a.Totals {
				totals[i] = wsync.BatchTotal{Scheme: t.Scheme, Currency: t.Currency, SalesCount: t.SalesCount,
					SalesMinor: t.SalesMinor, RefundsCount: t.RefundsCount, RefundsMinor: t.RefundsMinor}
			}
			body = wsync.BatchClose{V: wsync.Version, Key: a.Key, Device: device, Number: a.Number,
				OpenedAt: a.OpenedAt, ClosedAt: a.ClosedAt, Totals: totals}
		default:
			return nil, fmt.Errorf("daemon: no wire format for %T", m)
		}
		payload, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		return json.Marshal(wsync.OutboxMessage{Kind: m.MessageKind(), Key: m.MessageKey(), Payload: payload})
	}
}

func attemptOutcome(s payment.Status) string {
	switch s {
	case payment.StatusRefused:
		return wsync.AttemptRefusedOffline
	case payment.StatusCancelled:
		return wsync.AttemptCancelled
	case payment.StatusStoredOffline:
		return wsync.AttemptStoredOffline
	default:
		return wsync.AttemptDeclinedLocal
	}
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
