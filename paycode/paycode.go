package paycode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is the family a scanned code belongs to.
type Kind string

// Kinds of payment code.
const (
	KindWallet Kind = "wallet"  // a wallet app's one-time code (customer-presented)
	KindEMVCPM Kind = "emv_cpm" // EMVCo consumer-presented QR (a card credential)
	KindEMVMPM Kind = "emv_mpm" // EMVCo merchant-presented QR (the merchant's code)
)

// Result is what Identify learned about a code. Kind, Scheme and Operator are set only
// when the error is nil; Detected, Masked, Warnings and Candidates are set on error too,
// so that a log line or a technician's tool can say what the code looked like. A Result
// with a non-nil error must never be used for a payment.
type Result struct {
	Kind       Kind     `json:"kind"`
	Scheme     string   `json:"scheme"`   // e.g. "alipay", "wechatpay", "promptpay", "visa"
	Operator   string   `json:"operator"` // the settlement operator
	Masked     string   `json:"masked"`   // last 4 + short hash, safe for logs
	Candidates []string `json:"candidates,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`

	// Detected is the family the code appears to belong to, also when it is invalid
	// ("" when not even that is known).
	Detected Kind `json:"detected,omitempty"`
	// Basis is how sure the matching wallet rule is (BasisDocumented, ...).
	Basis string `json:"basis,omitempty"`
	// RulesVersion is the version of the wallet rule table that matched.
	RulesVersion string `json:"rules_version,omitempty"`
	// MPM is the decoded merchant-presented code (public merchant data).
	MPM *MPM `json:"mpm,omitempty"`
	// CPM is the masked consumer-presented code.
	CPM *CPM `json:"cpm,omitempty"`
}

// Identify recognises code with the default rule table (DefaultRules).
func Identify(code string) (Result, error) {
	return defaultRules.Identify(code)
}

// Identify recognises code: an EMVCo merchant-presented code (starts "000201", or
// "000202" as DuitNow writes it, or "0002" followed by anything but digits only), an EMVCo consumer-presented code (base64 starting
// "hQ"), or a wallet one-time code (all digits) matched against r. When several wallet rules match, the error wraps
// ErrAmbiguous and Result.Candidates lists them; paycode never guesses. Error texts
// are fit for a clerk's screen and never contain the code.
func (r Rules) Identify(code string) (Result, error) {
	if code == "" {
		return Result{}, ErrEmpty
	}
	res := Result{Masked: Mask(code)}
	switch {
	case strings.HasPrefix(code, "000201") || strings.HasPrefix(code, "000202") ||
		(strings.HasPrefix(code, "0002") && !isDigits(code)):
		res.Detected = KindEMVMPM
		m, warnings, err := Decode(code)
		res.Warnings = warnings
		if err != nil {
			return res, err
		}
		res.MPM = &m
		res.Kind = KindEMVMPM
		res.Scheme, res.Operator = "emvco", "EMVCo merchant-presented (scheme not recognised)"
		if s := m.Scheme(); s != nil {
			res.Scheme, res.Operator = s.Name, s.Operator
		}
		return res, nil
	case isDigits(code):
		res.Detected = KindWallet
		var buf [8]int
		m := r.matchWallet(code, buf[:0])
		switch len(m) {
		case 0:
			res.Detected = ""
			return res, fmt.Errorf("%w: a %d-digit number that matches no wallet rule", ErrUnknown, len(code))
		case 1:
			w := &r.rules[m[0]]
			res.Kind, res.Scheme, res.Operator, res.Basis = KindWallet, w.Scheme, w.Operator, w.Basis
			res.RulesVersion = r.version
			if w.Basis == BasisGuessed {
				res.Warnings = append(res.Warnings, "matched a rule marked as guessed")
			}
			return res, nil
		default:
			res.Candidates = make([]string, len(m))
			for i, k := range m {
				res.Candidates[i] = r.rules[k].Scheme
			}
			return res, fmt.Errorf("%w (%s); ask the customer which app they use", ErrAmbiguous, strings.Join(res.Candidates, ", "))
		}
	case looksLikeCPM(code):
		res.Detected = KindEMVCPM
		c, warnings, err := DecodeCPM(code)
		res.Warnings = warnings
		if err != nil {
			return res, err
		}
		res.CPM = &c
		res.Kind = KindEMVCPM
		res.Scheme, res.Operator = cpmScheme(&c)
		return res, nil
	case strings.HasPrefix(code, "https://") || strings.HasPrefix(code, "http://"):
		return res, fmt.Errorf("%w: a web address, not a payment code", ErrUnknown)
	default:
		return res, ErrUnknown
	}
}

// Mask returns a form of code safe for logs and receipts: "…" + last four characters +
// "#" + the first 8 hex digits of its SHA-256. The hash lets two log lines be matched to
// the same code without showing it; it is unkeyed, so it does not hide a code from
// someone who can enumerate the candidates.
func Mask(code string) string {
	sum := sha256.Sum256([]byte(code))
	last := code
	if n := utf8.RuneCountInString(code); n > 4 {
		i := len(code)
		for k := 0; k < 4; k++ {
			_, size := utf8.DecodeLastRuneInString(code[:i])
			i -= size
		}
		last = code[i:]
	}
	var b strings.Builder
	b.Grow(len("…") + len(last) + 9)
	b.WriteString("…")
	b.WriteString(last)
	b.WriteByte('#')
	var h [8]byte
	hex.Encode(h[:], sum[:4])
	b.Write(h[:])
	return b.String()
}
