package paycode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Basis says how a wallet rule is known.
const (
	BasisDocumented = "documented" // published by the scheme's own developer documentation
	BasisInferred   = "inferred"   // inferred from public integrator docs or real codes, not from the scheme
	BasisGuessed    = "guessed"    // a placeholder; expect false matches
)

// WalletRule describes the one-time codes (barcode or QR) a wallet app shows to be
// scanned at the counter: all digits, a length range, numeric prefix ranges and an
// optional check digit.
type WalletRule struct {
	Scheme   string `json:"scheme"`   // short stable name, e.g. "alipay"
	Operator string `json:"operator"` // who settles it
	// Prefixes are inclusive ranges of the first PrefixLen digits read as a number:
	// {{25, 30}} matches codes starting 25, 26, ... 30.
	Prefixes [][2]int `json:"prefixes"`
	// PrefixLen is the number of leading digits Prefixes apply to; 0 means 2.
	PrefixLen int    `json:"prefix_len,omitempty"`
	MinLen    int    `json:"min_len"`
	MaxLen    int    `json:"max_len"`
	Check     string `json:"check,omitempty"` // "" (none) or "luhn"
	Source    string `json:"source"`          // where the rule comes from
	Basis     string `json:"basis"`           // BasisDocumented, BasisInferred or BasisGuessed
}

// DefaultRulesVersion is the version of the built-in wallet rule table.
const DefaultRulesVersion = "2026-11-22.1"

// DefaultWalletRules is the built-in wallet rule table. It is read once, when the
// package is initialised, into the table Identify uses; to change the table at run time
// use ParseRules or NewRules and Rules.Identify.
var DefaultWalletRules = []WalletRule{
	{Scheme: "alipay", Operator: "Ant Group (Alipay, AlipayHK and Alipay+ partner wallets)",
		Prefixes: [][2]int{{25, 30}}, MinLen: 16, MaxLen: 24, Basis: BasisDocumented,
		Source: "Alipay open platform, face-to-face payment (opendocs.alipay.com/open/194/106039): auth_code is digits " +
			"starting 25-30, 16-24 long. Codes from AlipayHK and Alipay+ wallets share the range; which wallet issued " +
			"one is only known online (AlipayHK codeConsult API)."},
	{Scheme: "wechatpay", Operator: "Tenpay (WeChat Pay)",
		Prefixes: [][2]int{{10, 15}}, MinLen: 18, MaxLen: 18, Basis: BasisDocumented,
		Source: "WeChat Pay micropay API (pay.weixin.qq.com/wiki/doc/api/micropay.php?chapter=5_1): " +
			"auth_code is 18 digits starting 10, 11, 12, 13, 14 or 15."},
	{Scheme: "unionpay", Operator: "China UnionPay (UnionPay QR, customer-presented)",
		Prefixes: [][2]int{{62, 62}}, MinLen: 19, MaxLen: 19, Basis: BasisInferred,
		Source: "UnionPay QR customer-presented payment code: 62 followed by 17 digits, as documented by Chinese " +
			"acquirers and aggregators (not verified against UnionPay's own specification)."},
}

// Rules is a validated wallet rule table. The zero Rules has no wallet rules, so
// numeric codes are not recognised; MPM and CPM detection does not depend on it.
type Rules struct {
	version string
	rules   []WalletRule
}

// rulesFile is the JSON form of a rule table.
type rulesFile struct {
	Version string       `json:"version"`
	Wallets []WalletRule `json:"wallets"`
}

// ParseRules reads a wallet rule table from JSON:
//
//	{"version": "2026-12-01", "wallets": [{"scheme": "alipay", "operator": "...",
//	  "prefixes": [[25, 30]], "min_len": 16, "max_len": 24, "source": "...", "basis": "documented"}]}
//
// Decoding is strict: unknown fields, trailing data and invalid rules are errors
// wrapping ErrRules.
func ParseRules(data []byte) (Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f rulesFile
	if err := dec.Decode(&f); err != nil {
		return Rules{}, fmt.Errorf("%w: %v", ErrRules, err)
	}
	if dec.More() {
		return Rules{}, fmt.Errorf("%w: trailing data after the table", ErrRules)
	}
	if f.Wallets == nil {
		return Rules{}, fmt.Errorf("%w: no \"wallets\" list", ErrRules)
	}
	return NewRules(f.Version, f.Wallets)
}

// NewRules validates a wallet rule table. Every rule needs a scheme name (unique), an
// operator, a source, a basis, at least one prefix range within its PrefixLen digits,
// and 1 <= MinLen <= MaxLen <= 64 with MinLen >= PrefixLen.
func NewRules(version string, wallets []WalletRule) (Rules, error) {
	if version == "" {
		return Rules{}, fmt.Errorf("%w: version is empty", ErrRules)
	}
	seen := make(map[string]bool, len(wallets))
	rs := make([]WalletRule, len(wallets))
	for i, r := range wallets {
		bad := func(why string) (Rules, error) {
			return Rules{}, fmt.Errorf("%w: rule %d (%q): %s", ErrRules, i+1, r.Scheme, why)
		}
		if r.Scheme == "" || strings.TrimSpace(r.Scheme) != r.Scheme {
			return bad("scheme is empty or has spaces around it")
		}
		if seen[r.Scheme] {
			return bad("scheme appears twice")
		}
		seen[r.Scheme] = true
		if r.Operator == "" || r.Source == "" {
			return bad("operator and source are required")
		}
		switch r.Basis {
		case BasisDocumented, BasisInferred, BasisGuessed:
		default:
			return bad(`basis must be "documented", "inferred" or "guessed"`)
		}
		if r.PrefixLen == 0 {
			r.PrefixLen = 2
		}
		if r.PrefixLen < 1 || r.PrefixLen > 9 {
			return bad("prefix_len must be 1 to 9")
		}
		if r.MinLen < r.PrefixLen || r.MinLen > r.MaxLen || r.MaxLen > 64 {
			return bad("need prefix_len <= min_len <= max_len <= 64")
		}
		if len(r.Prefixes) == 0 {
			return bad("no prefixes")
		}
		limit := pow10(r.PrefixLen)
		for _, p := range r.Prefixes {
			if p[0] < 0 || p[0] > p[1] || p[1] >= limit {
				return bad(fmt.Sprintf("prefix range [%d, %d] is not within %d digits", p[0], p[1], r.PrefixLen))
			}
		}
		switch r.Check {
		case "", "luhn":
		default:
			return bad(`check must be "" or "luhn"`)
		}
		r.Prefixes = append([][2]int(nil), r.Prefixes...)
		rs[i] = r
	}
	return Rules{version: version, rules: rs}, nil
}

// DefaultRules returns the built-in table.
func DefaultRules() Rules { return defaultRules }

var defaultRules = func() Rules {
	r, err := NewRules(DefaultRulesVersion, DefaultWalletRules)
	if err != nil {
		panic(err) // the built-in table is tested
	}
	return r
}()

// Version is the table's version string.
func (r Rules) Version() string { return r.version }

// Wallets returns a copy of the table's rules.
func (r Rules) Wallets() []WalletRule {
	out := make([]WalletRule, len(r.rules))
	for i, w := range r.rules {
		w.Prefixes = append([][2]int(nil), w.Prefixes...)
		out[i] = w
	}
	return out
}

// UnmarshalJSON reads the table with ParseRules, so a configuration struct can hold a
// Rules field and get the same strict validation.
func (r *Rules) UnmarshalJSON(data []byte) error {
	parsed, err := ParseRules(data)
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

// MarshalJSON writes the table in the form ParseRules reads.
func (r Rules) MarshalJSON() ([]byte, error) {
	return json.Marshal(rulesFile{Version: r.version, Wallets: r.rules})
}

// matchWallet appends to dst the indexes of the rules code matches. code is all digits.
func (r *Rules) matchWallet(code string, dst []int) []int {
	for i := range r.rules {
		w := &r.rules[i]
		if len(code) < w.MinLen || len(code) > w.MaxLen {
			continue
		}
		p := 0
		for j := 0; j < w.PrefixLen; j++ {
			p = p*10 + int(code[j]-'0')
		}
		hit := false
		for _, pr := range w.Prefixes {
			if p >= pr[0] && p <= pr[1] {
				hit = true
				break
			}
		}
		if !hit || (w.Check == "luhn" && !luhn(code)) {
			continue
		}
		dst = append(dst, i)
	}
	return dst
}

func pow10(n int) int {
	v := 1
	for range n {
		v *= 10
	}
	return v
}

// luhn reports whether the digits in s pass the Luhn (mod 10) check.
func luhn(s string) bool {
	sum, dbl := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if dbl {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		dbl = !dbl
	}
	return sum%10 == 0
}
