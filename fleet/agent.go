package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	stdsync "sync"
	"time"

	"aead.dev/minisign"
)

// Change is a configuration the Agent asks the daemon to put in force.
type Change struct {
	Version   int64
	Effective []byte // the whole configuration: file ⊕ all ⊕ groups ⊕ device
	Rollback  bool   // a technician's rollback to an older version, not a push
}

// AgentConfig configures an Agent.
type AgentConfig struct {
	Device string
	Groups []string // in merge order
	Keys   []minisign.PublicKey
	// Base is the configuration file (as JSON) the slots are merged onto.
	Base []byte
	// StatePath is the state file; empty keeps the state in memory (a simulator).
	StatePath string
	// Validate checks an effective configuration exactly as posd's startup does; an
	// error rejects the document (400) with it as the reason.
	Validate func(effective []byte) error
	// Apply puts a configuration in force. It may wait (for a sale to finish); it
	// returns nil once the new configuration runs, or an error after it went back to
	// the previous one (500, the error is the reason).
	Apply func(ctx context.Context, c Change) error
	// Publish sends a report, retained, QoS 1. An error (offline) is not fatal: the
	// last report goes out again at Connected.
	Publish func(topic string, payload []byte) error
	// Redact removes secrets from an effective configuration kept in the history;
	// nil keeps it as it is.
	Redact func(effective []byte) []byte
	Now    func() time.Time
	Log    *slog.Logger
}

// Agent is a device's fleet-config state machine. Feed it the slot topics' messages
// with Handle, call Connected at every connection, and run it with Run.
type Agent struct {
	cfg  AgentConfig
	log  *slog.Logger
	in   chan message
	reqs chan request

	mu      stdsync.Mutex
	st      State                // guarded by mu; written only by Run's goroutine
	keys    []minisign.PublicKey // guarded by mu
	unsent  []Report             // guarded by mu: reports Publish failed to send, oldest first
	sending stdsync.Mutex        // one sender at a time keeps reports in order
}

type message struct {
	topic   string
	payload []byte
}

type request struct {
	version int64
	done    chan error
}

// NewAgent loads the state and returns an Agent.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if !ValidName(cfg.Device) {
		return nil, fmt.Errorf("fleet: device id %q", cfg.Device)
	}
	for _, g := range cfg.Groups {
		if !ValidName(g) {
			return nil, fmt.Errorf("fleet: group %q must be 1-64 characters of A-Z a-z 0-9 . _ -", g)
		}
	}
	if cfg.Validate == nil || cfg.Apply == nil || cfg.Publish == nil {
		return nil, errors.New("fleet: Validate, Apply and Publish are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Redact == nil {
		cfg.Redact = func(b []byte) []byte { return b }
	}
	if len(cfg.Base) == 0 {
		cfg.Base = []byte("{}")
	}
	var st State
	if cfg.StatePath != "" {
		var err error
		if st, err = LoadState(cfg.StatePath); err != nil {
			return nil, err
		}
	}
	return &Agent{cfg: cfg, log: cfg.Log, in: make(chan message, 16), reqs: make(chan request), st: st, keys: slices.Clone(cfg.Keys)}, nil
}

// SetKeys replaces the trusted keys (a pushed fleet.trusted_keys, once applied).
func (a *Agent) SetKeys(keys []minisign.PublicKey) {
	a.mu.Lock()
	a.keys = slices.Clone(keys)
	a.mu.Unlock()
}

// Filters are the topics to subscribe to (QoS 1), at every connection.
func (a *Agent) Filters() []string { return Filters(a.cfg.Device, a.cfg.Groups) }

// Handle queues one message of a slot topic; it blocks while the queue is full or
// until ctx is done.
func (a *Agent) Handle(ctx context.Context, topic string, payload []byte) {
	select {
	case a.in <- message{topic, slices.Clone(payload)}:
	case <-ctx.Done():
	}
}

// maxUnsent bounds the reports kept while offline; the oldest go first (the retained
// topic keeps only the last anyway).
const maxUnsent = 32

// Connected sends the reports made while offline, in order; with none, it sends the
// last report again (after a restart it may not have gone out).
func (a *Agent) Connected() {
	a.mu.Lock()
	empty := len(a.unsent) == 0
	last := a.st.Last
	a.mu.Unlock()
	if empty {
		if last != nil {
			a.publish(*last)
		}
		return
	}
	a.flush()
}

// State returns a copy of the current state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.clone()
}

// Effective is the configuration in force: Base ⊕ the applied layer.
func (a *Agent) Effective() ([]byte, int64, error) {
	a.mu.Lock()
	layer, v := a.st.Layer, a.st.Applied
	a.mu.Unlock()
	if len(layer) == 0 {
		return a.cfg.Base, v, nil
	}
	eff, err := MergePatch(a.cfg.Base, layer)
	return eff, v, err
}

// Rollback puts the configuration of history version back in force (through Apply)
// and reports it. Current is unchanged, so the newer documents stay refused as
// replays.
func (a *Agent) Rollback(ctx context.Context, version int64) error {
	r := request{version: version, done: make(chan error, 1)}
	select {
	case a.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrNoSuchVersion is returned by Rollback for a version not in the history.
var ErrNoSuchVersion = errors.New("fleet: version not in the history")

// Run handles messages and rollbacks until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-a.in:
			a.handle(ctx, m)
		case r := <-a.reqs:
			r.done <- a.rollback(ctx, r.version)
		}
	}
}

func (a *Agent) mine(s Slot) bool {
	switch s.Kind {
	case SlotAll:
		return true
	case SlotGroup:
		return slices.Contains(a.cfg.Groups, s.Name)
	default:
		return s.Name == a.cfg.Device
	}
}

// peekVersion reads the version a document claims, for a report about a document that
// could not be verified or parsed; 0 when there is none.
func peekVersion(doc []byte) int64 {
	var d struct {
		Version int64 `json:"version"`
	}
	_ = json.Unmarshal(doc, &d)
	return max(d.Version, 0)
}

func (a *Agent) handle(ctx context.Context, m message) {
	slot, err := ParseTopic(m.topic)
	if err != nil || !a.mine(slot) {
		a.log.Warn("fleet: message on a topic that is not one of this device's slots", "topic", m.topic)
		return
	}
	key := slotKey(slot)
	env, err := ParseEnvelope(m.payload)
	if errors.Is(err, ErrEmpty) {
		a.mu.Lock()
		_, held := a.st.Slots[key]
		st := a.st.clone()
		delete(st.Slots, key)
		delete(st.Seen, key)
		a.mu.Unlock()
		if held {
			a.log.Info("fleet: slot cleared; the applied config stays until a new document arrives", "slot", slot)
			a.commit(st)
		}
		return
	}
	if err != nil {
		a.reject(0, err)
		return
	}
	h := digest(env.Document, env.Signature)
	a.mu.Lock()
	seen := a.st.Seen[key] == h
	a.mu.Unlock()
	if seen {
		return // retained redelivery of what this slot already used
	}
	version := peekVersion(env.Document)
	a.mu.Lock()
	keys := a.keys
	a.mu.Unlock()
	keyID, err := Verify(keys, env.Document, []byte(env.Signature))
	if err != nil {
		a.reject(version, err)
		return
	}
	doc, err := ParseDocument(env.Document)
	if err != nil {
		a.reject(version, err)
		return
	}
	if doc.Target.Slot() != slot {
		a.reject(doc.Version, fmt.Errorf("%w: the document is for %s, it came on the slot of %s", ErrTarget, doc.Target, slot))
		return
	}
	if !a.mine(slot) {
		a.reject(doc.Version, fmt.Errorf("%w: %s", ErrTarget, doc.Target))
		return
	}
	if err := doc.CheckWindow(a.cfg.Now()); err != nil {
		a.reject(doc.Version, err)
		return
	}
	a.mu.Lock()
	st := a.st.clone()
	a.mu.Unlock()
	if doc.Version <= st.Current {
		a.reject(doc.Version, fmt.Errorf("%w: version %d is not above this device's current version %d", ErrReplay, doc.Version, st.Current))
		return
	}
	held := Held{Version: doc.Version, Document: env.Document, Signature: env.Signature}
	slots := make(map[string]Held, len(st.Slots)+1)
	for k, v := range st.Slots {
		slots[k] = v
	}
	slots[key] = held
	layer, err := a.layer(slots)
	if err != nil {
		a.reject(doc.Version, fmt.Errorf("%w: %w", ErrInvalid, err))
		return
	}
	eff, err := MergePatch(a.cfg.Base, layer)
	if err == nil {
		err = a.cfg.Validate(eff)
	}
	if err != nil {
		a.reject(doc.Version, fmt.Errorf("%w: %w", ErrInvalid, err))
		return
	}
	a.log.Info("fleet: document accepted; applying", "version", doc.Version, "slot", slot, "key", keyID)
	a.report(doc.Version, CodeApplying, "verified (key "+keyID+"); applying")
	if st.Seen == nil {
		st.Seen = map[string]string{}
	}
	st.Current = doc.Version
	st.Seen[key] = h
	if err := a.cfg.Apply(ctx, Change{Version: doc.Version, Effective: eff}); err != nil {
		if ctx.Err() != nil {
			return // stopping: nothing was committed, the retained document comes again
		}
		a.log.Error("fleet: apply failed; previous config back in force", "version", doc.Version, "err", err)
		a.finish(st, doc.Version, CodeFailed, "failed and rolled back: "+err.Error()) // the version is used up
		return
	}
	st.Slots = slots
	st.Applied = doc.Version
	st.Layer = layer
	st.History = append(st.History, Entry{
		Version: doc.Version, Slot: key, AppliedAt: a.cfg.Now().UTC(), Layer: layer,
		Effective: a.cfg.Redact(eff), Source: held, Slots: slots,
	})
	if n := len(st.History); n > HistorySize {
		st.History = slices.Clone(st.History[n-HistorySize:])
	}
	a.log.Info("fleet: config applied", "version", doc.Version)
	a.finish(st, doc.Version, CodeApplied, "applied")
}

// layer merges the held documents' configs in order: all, groups, device.
func (a *Agent) layer(slots map[string]Held) (json.RawMessage, error) {
	order := []string{"all"}
	for _, g := range a.cfg.Groups {
		order = append(order, "groups/"+g)
	}
	order = append(order, "devices/"+a.cfg.Device)
	layer := []byte("{}")
	for _, k := range order {
		h, ok := slots[k]
		if !ok {
			continue
		}
		d, err := ParseDocument(h.Document)
		if err != nil {
			return nil, err
		}
		if layer, err = MergePatch(layer, d.Config); err != nil {
			return nil, err
		}
	}
	return layer, nil
}

func (a *Agent) rollback(ctx context.Context, version int64) error {
	a.mu.Lock()
	st := a.st.clone()
	a.mu.Unlock()
	i := slices.IndexFunc(st.History, func(e Entry) bool { return e.Version == version })
	if i < 0 {
		return fmt.Errorf("%w: %d", ErrNoSuchVersion, version)
	}
	e := st.History[i]
	eff, err := MergePatch(a.cfg.Base, e.Layer)
	if err == nil {
		err = a.cfg.Validate(eff)
	}
	if err != nil {
		return fmt.Errorf("fleet: version %d no longer validates over the config file: %w", version, err)
	}
	if err := a.cfg.Apply(ctx, Change{Version: version, Effective: eff, Rollback: true}); err != nil {
		return fmt.Errorf("fleet: rollback to version %d failed, the previous config is back: %w", version, err)
	}
	st.Applied, st.Layer, st.Slots = version, e.Layer, e.Slots
	a.log.Info("fleet: rolled back", "version", version)
	a.finish(st, version, CodeApplied, fmt.Sprintf("rolled back on the device to version %d (current version stays %d)", version, st.Current))
	return nil
}

// finish commits st with the report of its outcome, then publishes the report.
func (a *Agent) finish(st State, version int64, code int, reason string) {
	r := Report{V: Version, Device: a.cfg.Device, Version: version, Code: code, Reason: reason, At: a.cfg.Now().UTC()}
	st.Last = &r
	a.commit(st)
	a.publish(r)
}

// commit makes st the state, on disk first.
func (a *Agent) commit(st State) {
	if a.cfg.StatePath != "" {
		if err := SaveState(a.cfg.StatePath, st); err != nil {
			a.log.Error("fleet: state not saved", "err", err)
		}
	}
	a.mu.Lock()
	a.st = st
	a.mu.Unlock()
}

func (a *Agent) reject(version int64, err error) {
	a.log.Warn("fleet: document rejected", "version", version, "err", err)
	a.report(version, CodeRejected, err.Error())
}

func (a *Agent) report(version int64, code int, reason string) {
	r := Report{V: Version, Device: a.cfg.Device, Version: version, Code: code, Reason: reason, At: a.cfg.Now().UTC()}
	a.mu.Lock()
	a.st.Last = &r
	a.mu.Unlock()
	a.publish(r)
}

// publish queues r behind any unsent reports and sends what it can, in order.
func (a *Agent) publish(r Report) {
	a.mu.Lock()
	a.unsent = append(a.unsent, r)
	if n := len(a.unsent); n > maxUnsent {
		a.unsent = slices.Clone(a.unsent[n-maxUnsent:])
	}
	a.mu.Unlock()
	a.flush()
}

func (a *Agent) flush() {
	a.sending.Lock()
	defer a.sending.Unlock()
	for {
		a.mu.Lock()
		if len(a.unsent) == 0 {
			a.mu.Unlock()
			return
		}
		r := a.unsent[0]
		a.mu.Unlock()
		if err := a.cfg.Publish(ReportTopic(a.cfg.Device), r.Marshal()); err != nil {
			a.log.Warn("fleet: report not sent (sent at the next connection)", "version", r.Version, "code", r.Code, "err", err)
			return
		}
		a.mu.Lock()
		a.unsent = a.unsent[1:]
		a.mu.Unlock()
	}
}
