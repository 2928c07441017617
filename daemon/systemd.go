package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/walletless/walletless/internal/sdnotify"
	"github.com/walletless/walletless/payment"
)

// errEngineStuck says the sale engine did not answer a watchdog probe in time.
var errEngineStuck = errors.New("daemon: the sale engine did not answer the watchdog probe")

// prober asks the running sale engine a question through its own loop and sends
// WATCHDOG=1 only when the answer came back in time. A stuck engine (a hung store
// commit, a deadlocked handler) never answers, so systemd stops getting pings and
// restarts posd; a ticker alone would hide it.
type prober struct {
	n       *sdnotify.Notifier
	engine  func(context.Context) *payment.Engine
	pending chan struct{} // closed when the outstanding question is answered; nil: none
}

// probe asks once, waiting at most timeout in all. The engine's request queue is
// buffered and a handed-over question cannot be withdrawn, so while a question from
// an earlier probe is unanswered no second one is asked: the probe waits for that one
// first (within the same timeout) and fails if it stays unanswered.
func (p *prober) probe(ctx context.Context, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.pending != nil {
		select {
		case <-p.pending:
			p.pending = nil
		case <-pctx.Done():
			return errEngineStuck
		}
	}
	e := p.engine(pctx) // nil while a new configuration starts and does not come up in time
	if e == nil {
		return errEngineStuck
	}
	answered := make(chan struct{})
	var err error
	go func() {
		// Stats returns once the loop ran it, the engine stopped, or pctx ended
		// before the question was handed over.
		_, err = e.Stats(pctx)
		close(answered)
	}()
	select {
	case <-answered:
		if err != nil {
			return errEngineStuck
		}
		return p.n.Notify(sdnotify.Watchdog)
	case <-pctx.Done():
		p.pending = answered
		return errEngineStuck
	}
}

// watchdog probes the engine every half interval until ctx ends. Each probe may take
// a quarter of the interval, so two missed probes in a row let systemd's timer run
// out.
func watchdog(ctx context.Context, n *sdnotify.Notifier, interval time.Duration, engine func(context.Context) *payment.Engine, log *slog.Logger) error {
	if n == nil || interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	p := &prober{n: n, engine: engine}
	failing := false
	for {
		err := p.probe(ctx, interval/4)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			log.Error("watchdog: no ping to systemd", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("watchdog: the sale engine answers again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
