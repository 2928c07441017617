package daemon

import (
	"context"
	"sync/atomic"
	"time"
)

// The grace (config payment.offline_after, default 10s) is how long the cloud link may
// be down before the sale engine treats the terminal as offline and applies the
// offline policy. A link that is reconnecting (or still connecting after a start) for
// less than this keeps sales authorizing: the request waits in the outbox and the
// in-doubt flow covers a longer outage. Refusing every sale during a two-second
// reconnect would be honest but useless.

// onlineTracker remembers when the link was last seen up.
type onlineTracker struct {
	up       func() bool
	grace    time.Duration
	lastSeen atomic.Int64 // unix nanoseconds
	// changed, if set, is called from run when Online's answer changes.
	changed func(online bool)
}

func newOnlineTracker(up func() bool, grace time.Duration) *onlineTracker {
	o := &onlineTracker{up: up, grace: grace}
	o.lastSeen.Store(time.Now().UnixNano()) // a fresh start gets the grace period to connect
	return o
}

// Online reports whether the link is up or was up within the grace period.
func (o *onlineTracker) Online() bool {
	if o.up() {
		o.lastSeen.Store(time.Now().UnixNano())
		return true
	}
	return time.Since(time.Unix(0, o.lastSeen.Load())) < o.grace
}

// run samples the link so that a short blip between two sales is noticed.
func (o *onlineTracker) run(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	was := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if now := o.Online(); now != was {
				was = now
				if o.changed != nil {
					o.changed(now)
				}
			}
		}
	}
}
