package payment

import (
	"fmt"
	"time"
)

// OfflineAction is what a scheme's offline policy does with a sale the terminal cannot
// authorize now.
type OfflineAction string

// Offline actions.
const (
	// Refuse: the clerk is told "offline — ask for another method". The default:
	// one-time wallet codes and EMVCo consumer-presented cryptograms expire within
	// minutes and cannot be authorized later by anyone.
	Refuse OfflineAction = "refuse"
	// Defer: store and forward within limits. The customer leaves; the merchant carries
	// the risk that the forwarded sale is declined.
	Defer OfflineAction = "defer"
)

// OfflinePolicy is one scheme's offline policy. Limits of zero (or a currency missing
// from a map) refuse.
type OfflinePolicy struct {
	Action OfflineAction `json:"action"`
	// MaxAmountMinor caps one deferred sale, per currency.
	MaxAmountMinor map[string]int64 `json:"max_amount_minor,omitempty"`
	// MaxTotalMinor caps the outstanding stored_offline total, per currency, across
	// every scheme (it is the merchant's exposure).
	MaxTotalMinor map[string]int64 `json:"max_total_minor,omitempty"`
	// MaxCount caps the number of outstanding stored_offline sales.
	MaxCount int `json:"max_count,omitempty"`
	// MaxAge: a stored_offline sale older than this is flagged expired.
	MaxAge time.Duration `json:"max_age,omitempty"`
}

// Policies are the offline policies by scheme name (paycode's scheme, such as
// "alipay"), then by code kind ("kind:wallet", "kind:emv_cpm"), then Default.
type Policies struct {
	ByScheme map[string]OfflinePolicy `json:"by_scheme,omitempty"`
	Default  OfflinePolicy            `json:"default"`
}

// For returns the policy for a scheme and code kind.
func (p Policies) For(scheme, kind string) OfflinePolicy {
	if q, ok := p.ByScheme[scheme]; ok {
		return q
	}
	if q, ok := p.ByScheme["kind:"+kind]; ok {
		return q
	}
	if p.Default.Action == "" {
		return OfflinePolicy{Action: Refuse}
	}
	return p.Default
}

// Validate checks the policies.
func (p Policies) Validate() error {
	check := func(name string, q OfflinePolicy) error {
		if q.Action != Refuse && q.Action != Defer && !(name == "default" && q.Action == "") {
			return fmt.Errorf("payment: offline policy %s: action %q is not refuse or defer", name, q.Action)
		}
		for c, v := range q.MaxAmountMinor {
			if v < 0 {
				return fmt.Errorf("payment: offline policy %s: max_amount_minor[%s] is negative", name, c)
			}
		}
		for c, v := range q.MaxTotalMinor {
			if v < 0 {
				return fmt.Errorf("payment: offline policy %s: max_total_minor[%s] is negative", name, c)
			}
		}
		if q.MaxCount < 0 || q.MaxAge < 0 {
			return fmt.Errorf("payment: offline policy %s: negative limit", name)
		}
		return nil
	}
	for n, q := range p.ByScheme {
		if err := check(n, q); err != nil {
			return err
		}
	}
	return check("default", p.Default)
}

// exposure is the outstanding stored_offline risk, owned by the engine goroutine.
type exposure struct {
	total map[string]int64 // by currency
	count int
}

// allow checks whether one more deferred sale fits the policy's limits, and returns
// the clerk-facing reason when it does not.
func (x *exposure) allow(q OfflinePolicy, amount int64, currency string) (bool, string) {
	if q.Action != Defer {
		return false, "offline — ask for another method"
	}
	if max := q.MaxAmountMinor[currency]; amount > max {
		return false, "offline — amount above the offline limit; ask for another method"
	}
	t, err := addMinor(x.total[currency], amount)
	if err != nil || t > q.MaxTotalMinor[currency] {
		return false, "offline — the offline total limit is reached; ask for another method"
	}
	if x.count+1 > q.MaxCount {
		return false, "offline — too many sales stored offline; ask for another method"
	}
	return true, ""
}

func (x *exposure) add(amount int64, currency string) {
	x.total[currency] += amount // bounded by allow's checked sum
	x.count++
}

func (x *exposure) remove(amount int64, currency string) {
	x.total[currency] -= amount
	if x.total[currency] <= 0 {
		delete(x.total, currency)
	}
	x.count--
}
