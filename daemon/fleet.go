package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/fleet"
	"github.com/walletless/walletless/printer"
	"github.com/walletless/walletless/scanner"
	wsync "github.com/walletless/walletless/sync"
)

// FleetStateFile is the fleet agent's state under the data directory: the documents
// held per slot, the current version and the last applied documents. A small JSON
// file written atomically (temporary file, fsync, rename, fsync of the directory)
// rather than a bucket in posd.db: it is written a few times a day at most, package
// fleet owns it without depending on the store, and a technician can read it.
const FleetStateFile = "fleet.json"

// Quiet-counter waits before a new configuration replaces the sale path.
const (
	quietPoll    = 100 * time.Millisecond
	receiptGrace = 30 * time.Second // queued receipts get this long to print first
)

// CheckConfig validates cfg exactly as posd's startup does: the config's own checks,
// then what needs more than the config (merchant.emv_qr decoded strictly, the rule
// table from payment.rules or payment.rules_file, the printer profile, the scanner's
// framing and keymap, the broker password file, the trusted keys). A pushed
// configuration goes through the same function before it is applied.
func CheckConfig(cfg config.Config, demo bool) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, err := paymentSettingsFrom(cfg, demo); err != nil {
		return err
	}
	if _, ok := printer.LookupProfile(cfg.Printer.Profile); !ok {
		return fmt.Errorf("daemon: printer.profile %q is not one of %v", cfg.Printer.Profile, printer.ProfileNames())
	}
	if _, err := scanner.ParseFraming(cfg.Scanner.Framing); err != nil {
		return fmt.Errorf("daemon: scanner.framing: %w", err)
	}
	if _, err := scanner.ParseKeymap(cfg.Scanner.Keymap); err != nil {
		return fmt.Errorf("daemon: scanner.keymap: %w", err)
	}
	if _, err := mqttPassword(cfg); err != nil {
		return err
	}
	if _, err := fleet.ParseKeys(cfg.Fleet.TrustedKeys); err != nil {
		return fmt.Errorf("daemon: fleet.trusted_keys: %w", err)
	}
	return nil
}

// fixedByFile names the settings a pushed configuration may not change: they need a
// restart of posd (the API's listener, the scanner, the data) or would take the
// device out of its fleet slots.
func fixedByFile(file, pushed config.Config) error {
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"device_id", file.DeviceID, pushed.DeviceID},
		{"data_dir", file.DataDir, pushed.DataDir},
		{"api", file.API, pushed.API},
		{"scanner", file.Scanner, pushed.Scanner},
		{"fleet.groups", file.Fleet.Groups, pushed.Fleet.Groups},
		// posctl firmware boot reads the file; the slots must be where it looks.
		{"firmware", file.Firmware, pushed.Firmware},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			return fmt.Errorf("daemon: %s cannot be changed by a pushed configuration (it needs a restart of posd); change it in the config file", f.name)
		}
	}
	if len(pushed.Fleet.TrustedKeys) == 0 && len(file.Fleet.TrustedKeys) > 0 {
		return errors.New("daemon: fleet.trusted_keys would be empty: the device would stop taking pushed configuration; keep at least one key")
	}
	return nil
}

// fleetState is what the rest of posd reads of the fleet configuration.
type fleetState struct {
	version atomic.Int64 // the version in force (0: the config file alone)
}

func (f *fleetState) versionString() string {
	if v := f.version.Load(); v > 0 {
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// openFleet makes the fleet agent and returns the configuration in force: the file
// (cfg) with the applied fleet layer on top. A layer that no longer validates over
// the file (the file was edited) is set aside with an error in the log: posd starts
// with the file alone rather than not at all.
func (rt *instance) openFleet(cfg config.Config) (config.Config, error) {
	base, err := json.Marshal(cfg)
	if err != nil {
		return cfg, fmt.Errorf("daemon: %w", err)
	}
	keys, err := fleet.ParseKeys(cfg.Fleet.TrustedKeys)
	if err != nil {
		return cfg, fmt.Errorf("daemon: fleet.trusted_keys: %w", err)
	}
	rt.file = cfg
	rt.agent, err = fleet.NewAgent(fleet.AgentConfig{
		Device: cfg.DeviceID, Groups: cfg.Fleet.Groups, Keys: keys, Base: base,
		StatePath: filepath.Join(cfg.DataDir, FleetStateFile),
		Validate:  func(eff []byte) error { _, err := rt.parsePushed(eff); return err },
		Apply:     rt.applyChange,
		Publish:   rt.publishReport,
		Redact:    redact,
		Log:       rt.log.With("component", "fleet"),
	})
	if err != nil {
		return cfg, err
	}
	eff, v, err := rt.agent.Effective()
	if err != nil || v == 0 {
		return cfg, err
	}
	pushed, err := rt.parsePushed(eff)
	if err != nil {
		rt.log.Error("the fleet configuration in force does not validate over the config file; starting with the file alone", "version", v, "err", err)
		return cfg, nil
	}
	rt.fleet.version.Store(v)
	rt.log.Info("fleet configuration in force", "version", v)
	return pushed, nil
}

// parsePushed reads an effective configuration strictly and checks it as startup does.
func (rt *instance) parsePushed(eff []byte) (config.Config, error) {
	c, err := config.Parse(bytes.NewReader(eff))
	if err != nil {
		return config.Config{}, err
	}
	if err := CheckConfig(c, rt.opts.Demo); err != nil {
		return config.Config{}, err
	}
	if err := fixedByFile(rt.file, c); err != nil {
		return config.Config{}, err
	}
	return c, nil
}

// redact removes the broker password from a configuration kept in the history or
// shown by the API.
func redact(eff []byte) []byte {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(eff))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	if mq, ok := m["mqtt"].(map[string]any); ok {
		if p, ok := mq["password"].(string); ok && p != "" {
			mq["password"] = "(redacted)"
		}
	}
	out, _ := json.Marshal(m)
	return out
}

// fleetSubscriptions are the slot topics the link carries when fleet keys are set.
func (rt *instance) fleetSubscriptions(ctx context.Context, cfg config.Config) []wsync.Subscription {
	if len(cfg.Fleet.TrustedKeys) == 0 {
		return nil
	}
	var subs []wsync.Subscription
	for _, f := range rt.agent.Filters() {
		subs = append(subs, wsync.Subscription{Filter: f, Handle: func(topic string, payload []byte) {
			rt.agent.Handle(ctx, topic, payload)
		}})
	}
	return subs
}

// publishReport sends a report over the running generation's link.
func (rt *instance) publishReport(topic string, payload []byte) error {
	rt.mu.Lock()
	gen := rt.gen
	rt.mu.Unlock()
	if gen == nil {
		return wsync.ErrOffline
	}
	return gen.link.Publish(topic, true, payload)
}

type applyRequest struct {
	cfg     config.Config
	version int64
	done    chan error
}

// applyChange is the agent's Apply: it hands the new configuration to the loop and
// waits for the outcome.
func (rt *instance) applyChange(ctx context.Context, c fleet.Change) error {
	cfg, err := rt.parsePushed(c.Effective)
	if err != nil {
		return err
	}
	req := applyRequest{cfg: cfg, version: c.Version, done: make(chan error, 1)}
	select {
	case rt.applies <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err = <-req.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	keys, _ := fleet.ParseKeys(cfg.Fleet.TrustedKeys) // checked by parsePushed
	rt.agent.SetKeys(keys)
	rt.fleet.version.Store(c.Version)
	return nil
}

// loop runs generations: the first from cfg, then one per applied configuration.
func (rt *instance) loop(ctx context.Context, cfg config.Config) error {
	gen, err := rt.start(ctx, cfg)
	if err != nil {
		return err
	}
	rt.setGen(gen)
	close(rt.ready)
	for {
		select {
		case <-ctx.Done():
			rt.setGen(nil)
			return gen.stop()
		case <-gen.done:
			rt.setGen(nil)
			if err := gen.stop(); err != nil {
				return err
			}
			return ctx.Err()
		case req := <-rt.applies:
			next, err, fatal := rt.switchTo(ctx, gen, req)
			if fatal != nil {
				return fatal
			}
			gen = next
			req.done <- err
		}
	}
}

// switchTo replaces gen by a generation of req.cfg once the counter is quiet. A new
// broker setting must give a healthy link within fleet.verify_timeout (the one in
// force before), or the previous configuration comes back and err says why. fatal is
// set when not even the previous configuration starts again.
func (rt *instance) switchTo(ctx context.Context, gen *generation, req applyRequest) (next *generation, err, fatal error) {
	if err := rt.waitQuiet(ctx, gen); err != nil {
		return gen, err, nil
	}
	rt.setGen(nil) // requests get 503 and scans wait until the new sale path runs
	if err := gen.stop(); err != nil {
		return nil, nil, err
	}
	back := func(why error) (*generation, error, error) {
		old, err := rt.start(ctx, gen.cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("daemon: the previous configuration did not start again: %w (after: %v)", err, why)
		}
		rt.setGen(old)
		return old, why, nil
	}
	rt.log.Info("applying a new configuration", "version", req.version)
	ng, err := rt.start(ctx, req.cfg)
	if err != nil {
		return back(fmt.Errorf("the new configuration did not start: %w", err))
	}
	rt.setGen(ng)
	if !reflect.DeepEqual(gen.cfg.MQTT, req.cfg.MQTT) {
		timeout := time.Duration(gen.cfg.Fleet.VerifyTimeout)
		if !waitOnline(ctx, ng.link, timeout) {
			why := ng.link.LastError()
			if why == "" {
				why = "no connection"
			}
			rt.setGen(nil)
			_ = ng.stop()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			rt.log.Error("new broker settings not healthy; previous configuration back", "version", req.version, "timeout", timeout, "err", why)
			return back(fmt.Errorf("the broker link with the new mqtt settings was not up within fleet.verify_timeout %s (%s); previous settings back", timeout, why))
		}
	}
	rt.log.Info("new configuration in force", "version", req.version)
	return ng, nil, nil
}

// waitQuiet waits until no sale is in progress (waiting for a code, authorizing, in
// doubt) and queued receipts printed (at most receiptGrace), then returns with the
// front door closed so no new sale can start; nil unless ctx ends.
func (rt *instance) waitQuiet(ctx context.Context, gen *generation) error {
	since := time.Now()
	logged := false
	t := time.NewTicker(quietPoll)
	defer t.Stop()
	for {
		busy, err := rt.busy(ctx, gen, since)
		if err == nil && !busy {
			rt.front.cur.Store(nil) // close the door, then look once more
			if busy, err = rt.busy(ctx, gen, since); err == nil && !busy {
				return nil
			}
			rt.front.cur.Store(gen.srv)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !logged {
			rt.log.Info("a new configuration waits for the sale in progress to finish")
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (rt *instance) busy(ctx context.Context, gen *generation, since time.Time) (bool, error) {
	s, err := gen.engine.Stats(ctx)
	if err != nil {
		return true, err
	}
	if s.Waiting != "" || s.Authorizing > 0 || s.InDoubt > 0 {
		return true, nil
	}
	return len(gen.receipts.q.Pending()) > 0 && time.Since(since) < receiptGrace, nil
}

func waitOnline(ctx context.Context, link *wsync.Link, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !link.Online() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-t.C:
		}
	}
	return true
}

// configHistory is the API's view of the fleet configuration.
func (rt *instance) configHistory() api.ConfigHistory { return historyView{rt} }

type historyView struct{ rt *instance }

// HistoryEntry is one applied version as GET /v1/config/history shows it.
type HistoryEntry struct {
	Version   int64           `json:"version"`
	Slot      string          `json:"slot"`
	AppliedAt time.Time       `json:"applied_at"`
	InForce   bool            `json:"in_force"`
	Config    json.RawMessage `json:"config"` // the fleet's layer: what it set over the file
	Effective json.RawMessage `json:"effective,omitempty"`
}

func (h historyView) Current() any {
	eff, _, err := h.rt.agent.Effective()
	out := map[string]any{"version": h.rt.fleet.version.Load(), "current": h.rt.agent.State().Current}
	if err == nil {
		h.rt.mu.Lock()
		gen := h.rt.gen
		h.rt.mu.Unlock()
		if gen != nil {
			eff, _ = json.Marshal(gen.cfg)
		}
		out["config"] = json.RawMessage(redact(eff))
	}
	return out
}

func (h historyView) History() any {
	st := h.rt.agent.State()
	inForce := h.rt.fleet.version.Load()
	entries := make([]HistoryEntry, 0, len(st.History))
	for i := len(st.History) - 1; i >= 0; i-- { // newest first
		e := st.History[i]
		entries = append(entries, HistoryEntry{Version: e.Version, Slot: e.Slot, AppliedAt: e.AppliedAt, InForce: e.Version == inForce, Config: redact(e.Layer), Effective: e.Effective})
	}
	var last any
	if st.Last != nil {
		last = st.Last
	}
	return map[string]any{"version": inForce, "current": st.Current, "history": entries, "last_report": last}
}

func (h historyView) Rollback(ctx context.Context, version int64) error {
	err := h.rt.agent.Rollback(ctx, version)
	if errors.Is(err, fleet.ErrNoSuchVersion) {
		return fmt.Errorf("%w: %d", api.ErrUnknownVersion, version)
	}
	return err
}

// front is the local API's one handler for the whole run: it hands each request to
// the running generation's server, and answers 503 while a new configuration starts.
type front struct{ cur atomic.Pointer[api.Server] }

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s := f.cur.Load(); s != nil {
		s.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"posd is applying a new configuration; retry in a moment"}` + "\n"))
}

// serveFront serves the local API on ln until ctx is done, with api.Server's limits.
func serveFront(ctx context.Context, ln net.Listener, f *front) error {
	srv := api.HTTPServer(ctx, f)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("daemon: local API: %w", err)
	case <-ctx.Done():
		f.cur.Store(nil) // requests that still arrive are told to retry
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	}
}
