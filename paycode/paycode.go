package paycode

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Kind is the family a scanned code belongs to.
type Kind string

// Kinds of payment code.
const (
	KindWallet Kind = "wallet"  // a wallet app's one-time code (customer-presented)
	KindEMVCPM Kind = "emv_cpm" // EMVCo consumer-presented QR (a card credential)
	KindEMVMPM Kind = "emv_mpm" // EMVCo merchant-presented QR (the merchant's code)
)

// Errors returned by Identify. They never contain the code itself.
var (
	// ErrUnknown means no rule matched the code.
	ErrUnknown = errors.New("paycode: code not recognised")
	// ErrAmbiguous means several rules matched; Result.Candidates lists them.
	ErrAmbiguous = errors.New("paycode: code matches several schemes")
	// ErrEmpty means the code was empty.
	ErrEmpty = errors.New("paycode: empty code")
)

// Result is what Identify learned about a code.
type Result struct {
	Kind       Kind     `json:"kind"`
	Scheme     string   `json:"scheme"`   // e.g. "alipay", "wechatpay"
	Operator   string   `json:"operator"` // the settlement operator
	Masked     string   `json:"masked"`   // last 4 + short hash, safe for logs
	Candidates []string `json:"candidates,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
}

// WalletRule describes the one-time codes of one wallet scheme.
type WalletRule struct {
	Scheme   string
	Operator string
	Prefixes [][2]int // inclusive two-digit prefix ranges
	MinLen   int
	MaxLen   int
	Source   string // where the rule comes from
}

// DefaultWalletRules is the built-in rule table.
var DefaultWalletRules = []WalletRule{
	{Scheme: "alipay", Operator: "Alipay (Ant Group)", Prefixes: [][2]int{{25, 30}}, MinLen: 16, MaxLen: 24,
		Source: "Alipay+ / Alipay open platform: auth_code is 25-30 followed by 14-22 digits"},
	{Scheme: "wechatpay", Operator: "WeChat Pay (Tenpay)", Prefixes: [][2]int{{10, 15}}, MinLen: 18, MaxLen: 18,
		Source: "WeChat Pay micropay API: auth_code is 18 digits starting 10-15"},
}

// Identify recognises code with the default rule table.
func Identify(code string) (Result, error) {
	if code == "" {
		return Result{}, ErrEmpty
	}
	res := Result{Masked: Mask(code)}
	if !allDigits(code) {
		return res, ErrUnknown
	}
	prefix := int(code[0]-'0')*10 + int(code[1]-'0')
	var matches []WalletRule
	for _, r := range DefaultWalletRules {
		if len(code) < r.MinLen || len(code) > r.MaxLen {
			continue
		}
		for _, p := range r.Prefixes {
			if prefix >= p[0] && prefix <= p[1] {
				matches = append(matches, r)
				break
			}
		}
	}
	switch len(matches) {
	case 0:
		return res, ErrUnknown
	case 1:
		res.Kind, res.Scheme, res.Operator = KindWallet, matches[0].Scheme, matches[0].Operator
		return res, nil
	default:
		for _, m := range matches {
			res.Candidates = append(res.Candidates, m.Scheme)
		}
		return res, fmt.Errorf("%w: %v", ErrAmbiguous, res.Candidates)
	}
}

func allDigits(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Mask returns a form of code safe for logs and receipts: "…" + last four characters +
// "#" + the first 8 hex digits of its SHA-256.
func Mask(code string) string {
	sum := sha256.Sum256([]byte(code))
	r := []rune(code)
	last := r
	if len(r) > 4 {
		last = r[len(r)-4:]
	}
	return "…" + string(last) + "#" + hex.EncodeToString(sum[:4])
}

// Currency is an ISO 4217 currency.
type Currency struct {
	Code     string // alphabetic, e.g. "KRW"
	Numeric  string // numeric, e.g. "410"
	Exponent int    // digits after the decimal point of its minor unit
}

var currencies = []Currency{
	{"KRW", "410", 0}, {"JPY", "392", 0}, {"CNY", "156", 2}, {"HKD", "344", 2},
	{"USD", "840", 2}, {"EUR", "978", 2}, {"SGD", "702", 2}, {"THB", "764", 2},
	{"MYR", "458", 2}, {"IDR", "360", 2}, {"VND", "704", 0}, {"BRL", "986", 2},
	{"TWD", "901", 2}, {"GBP", "826", 2}, {"AUD", "036", 2}, {"KWD", "414", 3},
}

// LookupCurrency finds a currency by its alphabetic or numeric ISO 4217 code.
func LookupCurrency(code string) (Currency, bool) {
	for _, c := range currencies {
		if c.Code == code || c.Numeric == code {
			return c, true
		}
	}
	return Currency{}, false
}
