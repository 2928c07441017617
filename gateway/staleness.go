package gateway

import (
	"fmt"
	"time"

	wsync "github.com/walletless/walletless/sync"
)

// DefaultMaxAge is how old a payment request (by its created_at) may be when the
// cloud first sees it. A sale authorized online is reversed by posd after its
// authorization timeout (30 s by default); a real acquirer asked to charge a request
// older than that would charge and then void it. A sale stored offline (offline:
// true) is exempt: it legitimately arrives hours later.
const DefaultMaxAge = 60 * time.Second

// stale reports whether a new payment request is too old to charge at now, with the
// reason the device is given.
func (r Rules) stale(req *wsync.PaymentRequest, now time.Time) (string, bool) {
	maxAge := r.MaxAge
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	if maxAge < 0 || req.Offline || req.CreatedAt.IsZero() {
		return "", false
	}
	age := now.Sub(req.CreatedAt)
	if age <= maxAge {
		return "", false
	}
	return fmt.Sprintf("request too old: created %s before it reached the cloud (limit %s)",
		age.Truncate(time.Second), maxAge), true
}
