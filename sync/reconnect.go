package sync

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Backoff is the wait between connection attempts: it doubles from Min to Max after
// each failure, each wait jittered by ±25% so a fleet that lost its broker at once
// does not come back at once, and starts over after a successful connection.
type Backoff struct {
	Min, Max time.Duration
	// Jitter spreads each wait; nil means the package's Jitter (tests replace it).
	Jitter func(time.Duration) time.Duration
	cur    time.Duration
}

// Next returns the wait before the next attempt and doubles the base.
func (b *Backoff) Next() time.Duration {
	if b.cur < b.Min {
		b.cur = b.Min
	}
	j := b.Jitter
	if j == nil {
		j = Jitter
	}
	d := j(b.cur)
	b.cur = min(2*b.cur, b.Max)
	return d
}

// Reset starts over at Min.
func (b *Backoff) Reset() { b.cur = b.Min }

// Reconnect runs MQTT sessions one after another until ctx is done: connect makes one
// attempt (connect, subscribe, birth message; every wait bounded) and serve runs the
// connection until it is lost (an error) or ctx is done (nil). Failed attempts are
// retried after b.Next(); the first and every tenth are logged. Reconnect returns
// when ctx is done or serve returned nil. Device links and gateways both use it.
func Reconnect(ctx context.Context, log *slog.Logger, broker string, b *Backoff, connect func() error, serve func() error) {
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return
		}
		if err := connect(); err != nil {
			d := b.Next()
			if attempt == 1 || attempt%10 == 0 {
				log.Warn("broker unreachable; retrying", "broker", broker, "attempt", attempt, "in", d.Round(time.Millisecond), "err", err)
			}
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		attempt = 0
		b.Reset()
		if serve() == nil {
			return
		}
	}
}

// Dial makes one connection attempt with c. paho bounds the attempt with the client's
// ConnectTimeout; the wait here gives it two seconds more to say so, so that no
// second attempt starts on the same client while the first still runs.
func Dial(c mqtt.Client, timeout time.Duration) error {
	t := c.Connect()
	if !t.WaitTimeout(timeout + 2*time.Second) {
		c.Disconnect(0)
		return fmt.Errorf("sync: connect: no answer from the broker within %s", timeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("sync: connect: %w", err)
	}
	return nil
}

// Jitter returns d ± 25%, so a fleet that lost its broker at once does not come back
// at once.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	q := int64(d) / 4
	return time.Duration(int64(d) - q + rand.Int64N(2*q+1))
}
