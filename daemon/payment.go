package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/payment"
	wsync "github.com/walletless/walletless/sync"
)

// paymentSettings are the sale engine's settings derived from the configuration.
// merchant.emv_qr, decoded strictly, is the merchant-presented template; without it
// the demo gets a made-up merchant account so the flow can be tried, and elsewhere the
// flow stays off.
type paymentSettings struct {
	MerchantCode    *paycode.MPM
	PresentTimeout  time.Duration
	QueryTimeout    time.Duration
	Offline         payment.Policies
	CodeReuseWindow time.Duration
	PruneAfter      time.Duration
	Identify        func(string) (paycode.Result, error)
}

func paymentSettingsFrom(cfg config.Config, demo bool) (paymentSettings, error) {
	var mc *paycode.MPM
	if cfg.Merchant.EMVQR != "" {
		var err error
		if mc, err = payment.ParseMerchantCode(cfg.Merchant.EMVQR, cfg.DeviceID); err != nil {
			return paymentSettings{}, fmt.Errorf("daemon: merchant.emv_qr: %w (check it with posctl merchant check)", err)
		}
	} else if demo {
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
	ps := paymentSettings{
		MerchantCode:    mc,
		PresentTimeout:  time.Duration(cfg.Payment.PresentTimeout),
		QueryTimeout:    time.Duration(cfg.Payment.QueryTimeout),
		Offline:         payment.Policies{Default: offlinePolicy(cfg.Payment.Offline.Default)},
		CodeReuseWindow: time.Duration(cfg.Payment.CodeReuseWindow),
		PruneAfter:      time.Duration(cfg.Payment.PruneAfter),
		Identify:        paycode.Identify,
	}
	if len(cfg.Payment.Offline.ByScheme) > 0 {
		ps.Offline.ByScheme = make(map[string]payment.OfflinePolicy, len(cfg.Payment.Offline.ByScheme))
		for name, p := range cfg.Payment.Offline.ByScheme {
			ps.Offline.ByScheme[name] = offlinePolicy(p)
		}
	}
	if cfg.Payment.RulesFile != "" {
		raw, err := os.ReadFile(cfg.Payment.RulesFile)
		if err != nil {
			return ps, fmt.Errorf("daemon: payment.rules_file: %w", err)
		}
		rules, err := paycode.ParseRules(raw)
		if err != nil {
			return ps, fmt.Errorf("daemon: payment.rules_file %s: %w", cfg.Payment.RulesFile, err)
		}
		ps.Identify = rules.Identify
	}
	if r := cfg.Payment.Rules; len(r) > 0 && string(r) != "null" {
		rules, err := paycode.ParseRules(r)
		if err != nil {
			return ps, fmt.Errorf("daemon: payment.rules: %w", err)
		}
		ps.Identify = rules.Identify
	}
	return ps, nil
}

func offlinePolicy(p config.OfflinePolicy) payment.OfflinePolicy {
	return payment.OfflinePolicy{
		Action:         payment.OfflineAction(p.Action),
		MaxAmountMinor: p.MaxAmountMinor,
		MaxTotalMinor:  p.MaxTotalMinor,
		MaxCount:       p.MaxCount,
		MaxAge:         time.Duration(p.MaxAge),
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
				CreatedAt: a.CreatedAt, Batch: a.Batch,
			}
		case payment.QueryRequest:
			body = wsync.QueryRequest{V: wsync.Version, Key: a.Key, Device: device, AskedAt: a.AskedAt}
		case payment.ReversalRequest:
			body = wsync.ReversalRequest{V: wsync.Version, Key: a.Key, Device: device, AmountMinor: a.AmountMinor,
				Currency: a.Currency, Scheme: a.Scheme, Reason: clip(a.Reason, 200), CreatedAt: a.At}
		case payment.RefundRequest:
			body = wsync.RefundRequest{V: wsync.Version, Key: a.Key, Device: device, OriginalKey: a.SaleKey,
				AmountMinor: a.AmountMinor, Currency: a.Currency, CreatedAt: a.At, Batch: a.Batch}
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
