package conformance

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	stdsync "sync"
	"time"

	wsync "github.com/walletless/walletless/sync"
)

// Config says where the cloud under test is and how to reach it as a device.
type Config struct {
	BrokerURL string
	// DeviceID is the first simulated device (default "conformance-1"); DeviceID2
	// the second, for the cross-device scenario (default DeviceID + "-b"). On a broker
	// with the deploy ACL each logs in with its device id as user name.
	DeviceID, DeviceID2 string
	Username            string // user name of the first device; default its device id
	Username2           string // of the second; default its device id
	Password            string
	TLS                 *tls.Config
	// Timeout bounds every wait for an answer; default 10s.
	Timeout time.Duration
	// Quiet is how long the kit listens for an answer that must not come, after the
	// answer to a later valid message arrived; default 300ms.
	Quiet time.Duration
	// MaxAge is the cloud's staleness limit; default 60s (the contract's).
	MaxAge time.Duration
	// StopCloud and StartCloud stop and start the cloud under test (its broker
	// session and its ledger must survive, as in production). Without both, the
	// restart scenario is skipped.
	StopCloud, StartCloud func(context.Context) error
	Log                   *slog.Logger
}

// Verdicts.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Result is one scenario's verdict with its evidence.
type Result struct {
	Name     string        `json:"name"`
	About    string        `json:"about"`
	Verdict  string        `json:"verdict"`
	Detail   string        `json:"detail,omitempty"` // why it failed or was skipped
	Evidence []Exchange    `json:"evidence"`
	Took     time.Duration `json:"took_ns"`
}

// Scenario is one named check.
type Scenario struct {
	Name  string
	About string
	run   func(ctx context.Context, s *session) error
}

// errSkip marks a scenario that cannot run with this configuration.
var errSkip = errors.New("skipped")

// session is one scenario's run: its devices, its keys and its evidence.
type session struct {
	cfg   Config
	a, b  *device
	run   string // unique per scenario run, part of every key
	n     int
	mu    stdsync.Mutex
	log   []Exchange
	batch string
}

// key returns a fresh idempotency key for this scenario run.
func (s *session) key(what string) string {
	s.n++
	return fmt.Sprintf("%s-%s%d", s.run, what, s.n)
}

// Run runs every scenario whose name matches pattern (nil: all) in order and returns
// their results. It fails only when it cannot reach the broker.
func Run(ctx context.Context, cfg Config, pattern *regexp.Regexp) ([]Result, error) {
	if cfg.BrokerURL == "" {
		return nil, fmt.Errorf("conformance: a broker URL is required")
	}
	if cfg.DeviceID == "" {
		cfg.DeviceID = "conformance-1"
	}
	if cfg.DeviceID2 == "" {
		cfg.DeviceID2 = cfg.DeviceID + "-b"
	}
	if !wsync.ValidDeviceID(cfg.DeviceID) || !wsync.ValidDeviceID(cfg.DeviceID2) || cfg.DeviceID == cfg.DeviceID2 {
		return nil, fmt.Errorf("conformance: device ids %q and %q must be two valid, different ids (1-64 of [A-Za-z0-9._-])", cfg.DeviceID, cfg.DeviceID2)
	}
	if cfg.Username == "" {
		cfg.Username = cfg.DeviceID
	}
	if cfg.Username2 == "" {
		cfg.Username2 = cfg.DeviceID2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 300 * time.Millisecond
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a, err := dial(ctx, cfg, cfg.DeviceID, cfg.Username)
	if err != nil {
		return nil, err
	}
	defer a.close()
	b, err := dial(ctx, cfg, cfg.DeviceID2, cfg.Username2)
	if err != nil {
		return nil, err
	}
	defer b.close()
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	runID := hex.EncodeToString(rb[:])
	var out []Result
	for i, sc := range Scenarios() {
		if pattern != nil && !pattern.MatchString(sc.Name) {
			continue
		}
		s := &session{cfg: cfg, a: a, b: b, run: fmt.Sprintf("c%s-%02d", runID, i)}
		a.setLog(&s.log, &s.mu)
		b.setLog(&s.log, &s.mu)
		badBefore := len(a.badAnswers()) + len(b.badAnswers())
		start := time.Now()
		err := sc.run(ctx, s)
		res := Result{Name: sc.Name, About: sc.About, Verdict: Pass, Took: time.Since(start)}
		if bad := append(a.badAnswers(), b.badAnswers()...); err == nil && len(bad) > badBefore {
			err = fmt.Errorf("an answer does not match docs/schema/v1: %s", bad[badBefore])
		}
		switch {
		case errors.Is(err, errSkip):
			res.Verdict, res.Detail = Skip, err.Error()
		case err != nil:
			res.Verdict, res.Detail = Fail, err.Error()
		}
		s.mu.Lock()
		res.Evidence = append([]Exchange(nil), s.log...)
		s.mu.Unlock()
		cfg.Log.Info("scenario", "name", sc.Name, "verdict", res.Verdict, "detail", res.Detail)
		out = append(out, res)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	a.setLog(nil, nil)
	b.setLog(nil, nil)
	return out, nil
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Verdict == Fail {
			return true
		}
	}
	return false
}
