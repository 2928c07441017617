package firmware

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	stdsync "sync"
	"time"

	"aead.dev/minisign"
)

// Step is a state of an update. The chain is download → verify → install → switch →
// verify_new → commit, or rollback from any state after switch.
type Step string

// Steps, in order.
const (
	StepDownload  Step = "download"
	StepVerify    Step = "verify"
	StepInstall   Step = "install"
	StepSwitch    Step = "switch"
	StepVerifyNew Step = "verify_new"
	StepCommit    Step = "commit"
	StepRollback  Step = "rollback"
)

// Results of a finished update.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
	ResultRejected  = "rejected"
)

// Health is what the running posd sees of its parts, recorded before a switch so the
// new version must be at least as healthy.
type Health struct {
	Scanner bool `json:"scanner"` // the scanner is connected
	Printer bool `json:"printer"` // the printer opened
	// PrinterState is what the printer said about itself (one of the Printer*
	// constants; "" in states written before it was recorded: not compared).
	PrinterState string `json:"printer_state,omitempty"`
	// PrinterDetail is the printer's own words (paper out, cover open, the error).
	PrinterDetail string `json:"printer_detail,omitempty"`
}

// Printer states a health check records, from best to worst. A printer whose
// transport cannot report its status (a file, the emulator, "none") is PrinterNoStatus
// and counts as PrinterOK: it opened, and there is nothing more to ask it.
const (
	PrinterOK          = "ok"          // it answered: ready (paper near end still prints)
	PrinterNoStatus    = "no_status"   // it opened; its transport has no status
	PrinterNotReady    = "not_ready"   // it answered: paper out, cover open, offline or error
	PrinterUnreachable = "unreachable" // it did not answer (unplugged, switched off, away)
	PrinterAbsent      = "absent"      // the sale path (and the printer) did not start
)

// printerRank orders printer states: higher is healthier; -1 for an unknown state.
func printerRank(s string) int {
	switch s {
	case PrinterOK, PrinterNoStatus:
		return 3
	case PrinterNotReady:
		return 2
	case PrinterUnreachable:
		return 1
	case PrinterAbsent:
		return 0
	}
	return -1
}

// Worse says how now is less healthy than before ("" when it is at least as
// healthy): a scanner connected before must be connected now, a printer must be in a
// state at least as good as before (a printer that had paper must have paper).
func (now Health) Worse(before Health) string {
	if before.Scanner && !now.Scanner {
		return "the scanner was connected before the update and is not now"
	}
	if before.PrinterState == "" {
		return ""
	}
	b, n := printerRank(before.PrinterState), printerRank(now.PrinterState)
	if n < b {
		reason := fmt.Sprintf("the printer was %s before the update and is %s now", printerWords(before.PrinterState), printerWords(now.PrinterState))
		if now.PrinterDetail != "" {
			reason += " (" + now.PrinterDetail + ")"
		}
		return reason
	}
	return ""
}

func printerWords(s string) string {
	switch s {
	case PrinterOK, PrinterNoStatus:
		return "ready"
	case PrinterNotReady:
		return "not ready"
	case PrinterUnreachable:
		return "unreachable"
	case PrinterAbsent:
		return "not started"
	}
	return fmt.Sprintf("%q", s)
}

// Update is an update in progress.
type Update struct {
	ID             string    `json:"id"`            // the job id, or flash-/usb- and a time
	Source         string    `json:"source"`        // job, flash or usb
	URL            string    `json:"url,omitempty"` // where a job downloads from
	File           string    `json:"file"`          // the artifact on disk
	Version        string    `json:"version"`       // the new version
	MinVersion     string    `json:"min_version,omitempty"`
	ManifestSHA256 string    `json:"manifest_sha256,omitempty"`
	Step           Step      `json:"step"`
	From           string    `json:"from,omitempty"` // the slot that ran before
	FromVersion    string    `json:"from_version,omitempty"`
	To             string    `json:"to,omitempty"`
	Attempts       int       `json:"attempts"`          // starts of the new version on trial
	Deadline       time.Time `json:"deadline,omitzero"` // the new version commits before this
	Before         Health    `json:"before"`
	Snapshot       bool      `json:"snapshot"` // a store snapshot waits for a rollback
	Reason         string    `json:"reason,omitempty"`
	Started        time.Time `json:"started"`
}

// Outcome is how the last update ended.
type Outcome struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Result  string    `json:"result"` // succeeded, failed or rejected
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// State is the persisted state of the firmware machine.
type State struct {
	V       int      `json:"v"`
	Slot    string   `json:"slot,omitempty"`    // the committed slot
	Version string   `json:"version,omitempty"` // the committed version
	Floor   string   `json:"floor,omitempty"`   // the highest min_version committed
	Update  *Update  `json:"update,omitempty"`
	Last    *Outcome `json:"last,omitempty"`
	// Previous is the version the last committed update replaced, still in its
	// slot: what `posctl firmware rollback` goes back to.
	Previous *Previous `json:"previous,omitempty"`
}

// Previous is the version in the other slot.
type Previous struct {
	Slot    string `json:"slot"`
	Version string `json:"version"`
}

// SourceRollback is the Source of an update that goes back to the previous version
// (BeginRollback): nothing is downloaded or written into a slot.
const SourceRollback = "rollback"

// StateFile and SnapshotFile are the machine's files in its directory.
const (
	StateFile    = "state.json"
	SnapshotFile = "snapshot.db"
	DownloadFile = "download.wlf"
)

// MachineConfig configures a Machine.
type MachineConfig struct {
	Dir     string  // the machine's directory (state, snapshot, downloads)
	Backend Backend // where slots live
	Keys    []minisign.PublicKey
	Arch    string // runtime.GOARCH
	Board   string
	// DB is the store file a snapshot is taken of and restored to.
	DB string
	// MaxAttempts is how many starts the new version has to pass its health check
	// before a start rolls back (default 3).
	MaxAttempts   int
	VerifyTimeout time.Duration
	Log           *slog.Logger
	Now           func() time.Time
	// Hook, if set, is called at each crash point of an update (tests kill the
	// process there): with a step's name right after that step is persisted and
	// before it acts, and with the HookPoints between an action and the state that
	// records it. It runs with the machine's lock held.
	Hook func(point string)
}

// Machine is the persisted update state machine. Its state lives in a JSON file
// written atomically, not in posd's bbolt file: the supervisor reads it before posd
// starts, and a rollback restores the bbolt file from a snapshot, which must not
// take the state back with it. Its methods are safe for concurrent use.
type Machine struct {
	cfg MachineConfig
	mu  stdsync.Mutex
	st  State // guarded by mu
}

// OpenMachine loads the state in cfg.Dir (none yet: idle on the running slot).
func OpenMachine(cfg MachineConfig) (*Machine, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 2 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	m := &Machine{cfg: cfg}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, StateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		m.st = State{V: 1}
	case err != nil:
		return nil, fmt.Errorf("firmware: %w", err)
	default:
		if err := json.Unmarshal(b, &m.st); err != nil {
			return nil, fmt.Errorf("firmware: %s: %w", StateFile, err)
		}
	}
	if m.st.Slot == "" {
		if run, err := cfg.Backend.Running(); err == nil {
			m.st.Slot = run
		}
	}
	return m, nil
}

// State returns a copy of the state.
func (m *Machine) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	if s.Update != nil {
		u := *s.Update
		s.Update = &u
	}
	return s
}

// Target is what this device accepts now.
func (m *Machine) Target() Target {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Target{Arch: m.cfg.Arch, Board: m.cfg.Board, Floor: m.st.Floor}
}

// Dir is the machine's directory.
func (m *Machine) Dir() string { return m.cfg.Dir }

// Backend is the machine's slot backend.
func (m *Machine) Backend() Backend { return m.cfg.Backend }

// save persists the state; mu is held.
func (m *Machine) save() error {
	b, err := json.MarshalIndent(m.st, "", "  ")
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(m.cfg.Dir, StateFile), b, 0o600); err != nil {
		return err
	}
	if m.st.Update != nil {
		m.hook(string(m.st.Update.Step))
	}
	return nil
}

// Crash points between an action and the state that records it (see
// MachineConfig.Hook); the other crash points are the steps themselves.
const (
	HookSwitchLinked     = "switch:linked"     // the new slot is current; the state still says switch
	HookCommitSlot       = "commit:slot"       // the backend committed; the state still says commit
	HookRollbackSlot     = "rollback:slot"     // the old slot is current again; the snapshot is not restored yet
	HookRollbackRestored = "rollback:restored" // the snapshot is restored; the state still says rollback
)

// HookPoints are every crash point, in the order an update passes them.
var HookPoints = []string{string(StepDownload), string(StepVerify), string(StepInstall), string(StepSwitch), HookSwitchLinked,
	string(StepVerifyNew), string(StepCommit), HookCommitSlot, string(StepRollback), HookRollbackSlot, HookRollbackRestored}

func (m *Machine) hook(point string) {
	if m.cfg.Hook != nil {
		m.cfg.Hook(point)
	}
}

// step moves the update to s and persists it; mu is held.
func (m *Machine) step(s Step) error {
	m.st.Update.Step = s
	m.cfg.Log.Info("firmware step", "id", m.st.Update.ID, "version", m.st.Update.Version, "step", s)
	return m.save()
}

// Begin starts an update (u.Step download or verify); ErrBusy when one runs.
func (m *Machine) Begin(u Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Update != nil {
		return fmt.Errorf("%w (%s to %s, %s)", ErrBusy, m.st.Update.ID, m.st.Update.Version, m.st.Update.Step)
	}
	run, err := m.cfg.Backend.Running()
	if err != nil {
		return err
	}
	if u.Step == "" {
		u.Step = StepVerify
	}
	u.From, u.To, u.FromVersion = run, Other(run), m.st.Version
	u.Started = m.cfg.Now().UTC()
	m.st.Update = &u
	m.cfg.Log.Info("firmware update begins", "id", u.ID, "source", u.Source, "step", u.Step)
	return m.save()
}

// Fail ends an update that has not switched: the running slot stays as it is. A
// refusal of the artifact (reasons of ErrSignature, ErrDowngrade…) is "rejected",
// anything else "failed".
func (m *Machine) Fail(cause error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil {
		return nil
	}
	if u.Step == StepSwitch || u.Step == StepVerifyNew || u.Step == StepCommit || u.Step == StepRollback {
		return fmt.Errorf("firmware: update %s has switched; it rolls back instead", u.ID)
	}
	res := ResultFailed
	if Rejection(cause) {
		res = ResultRejected
	}
	if u.Source != "usb" {
		os.Remove(u.File)
	}
	m.finish(res, cause.Error())
	return m.save()
}

// Rejection reports whether err is a refusal of the artifact itself.
func Rejection(err error) bool {
	for _, r := range []error{ErrMalformed, ErrTruncated, ErrSignature, ErrUntrustedKey, ErrDowngrade, ErrArch, ErrBoard, ErrPayloadHash, ErrNoKeys} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// finish records the outcome and clears the update; mu is held.
func (m *Machine) finish(result, reason string) {
	u := m.st.Update
	m.st.Last = &Outcome{ID: u.ID, Version: u.Version, Result: result, Reason: reason, At: m.cfg.Now().UTC()}
	m.st.Update = nil
	m.cfg.Log.Info("firmware update ended", "id", u.ID, "version", u.Version, "result", result, "reason", reason)
}

// SetStep records a step of the work before the install (download, verify).
func (m *Machine) SetStep(s Step) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Update == nil {
		return ErrNotFound
	}
	return m.step(s)
}

// Check verifies the update's artifact file completely (signature, target, floor,
// every payload hash, the manifest hash the job named) without writing anything.
func (m *Machine) Check() (Header, error) {
	m.mu.Lock()
	u := m.st.Update
	if u == nil {
		m.mu.Unlock()
		return Header{}, ErrNotFound
	}
	file, want := u.File, u.ManifestSHA256
	if err := m.step(StepVerify); err != nil {
		m.mu.Unlock()
		return Header{}, err
	}
	t := Target{Arch: m.cfg.Arch, Board: m.cfg.Board, Floor: m.st.Floor}
	m.mu.Unlock()
	h, err := Verify(file, m.cfg.Keys, t)
	if err != nil {
		return h, err
	}
	if want != "" && want != h.ManifestSHA256 {
		return h, fmt.Errorf("%w: the manifest's SHA-256 is not the one the job names", ErrSignature)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Update.Version, m.st.Update.MinVersion, m.st.Update.ManifestSHA256 = h.Manifest.Version, h.Manifest.MinVersion, h.ManifestSHA256
	return h, m.save()
}

// NoteVersion records the running version as the committed one while no update
// runs: the state may not know it yet (a slot set up by `posctl firmware init`) or
// know an older one (the package's upgrade put a newer posd into the slot), and the
// version an update replaces must be known for a later rollback.
func (m *Machine) NoteVersion(v string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Update != nil || m.st.Version == v || v == "" {
		return nil
	}
	m.st.Version = v
	return m.save()
}

// BeginRollback starts going back to the previous version, which a committed update
// left in the other slot. It runs as an update without a download: the daemon waits
// for a quiet counter, snapshots the store (Install), switches (Switch), and the
// previous version passes the health check on trial and commits, or is rolled back
// itself. The store is not taken back to the one of before the update (that would
// lose the sales made since): the previous version reads the store as it is. That is
// why a release whose store the previous version cannot read sets its -min-version
// to itself, and a rollback below the floor is refused (ErrDowngrade).
func (m *Machine) BeginRollback(id string) (Update, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Update != nil {
		return Update{}, fmt.Errorf("%w (%s to %s, %s)", ErrBusy, m.st.Update.ID, m.st.Update.Version, m.st.Update.Step)
	}
	p := m.st.Previous
	if p == nil || p.Version == "" {
		return Update{}, fmt.Errorf("firmware: no previous version is known to roll back to (none was committed over, or its version was not recorded); flash the version you want")
	}
	if CompareVersions(p.Version, m.st.Floor) < 0 {
		return Update{}, fmt.Errorf("%w: the previous version %s is below the floor %s (the running version's store cannot be read by it)", ErrDowngrade, p.Version, m.st.Floor)
	}
	run, err := m.cfg.Backend.Running()
	if err != nil {
		return Update{}, err
	}
	if p.Slot != Other(run) {
		return Update{}, fmt.Errorf("firmware: the previous version is recorded in slot %s, which is running", p.Slot)
	}
	u := Update{ID: id, Source: SourceRollback, Version: p.Version, Step: StepInstall, From: run, To: p.Slot, FromVersion: m.st.Version, Started: m.cfg.Now().UTC()}
	m.st.Update = &u
	m.cfg.Log.Info("firmware rollback to the previous version begins", "id", id, "version", p.Version, "slot", p.Slot)
	return u, m.save()
}

// Install writes the artifact into the inactive slot, re-verifying as it streams
// (the file may have changed since Check). snapshot, if set, writes a consistent copy
// of the store to the path it is given; it runs first, so a rollback can restore it.
func (m *Machine) Install(snapshot func(dst string) error, progress func(done, total int64)) error {
	m.mu.Lock()
	u := m.st.Update
	if u == nil {
		m.mu.Unlock()
		return ErrNotFound
	}
	if err := m.step(StepInstall); err != nil {
		m.mu.Unlock()
		return err
	}
	file, to, want := u.File, u.To, u.ManifestSHA256
	t := Target{Arch: m.cfg.Arch, Board: m.cfg.Board, Floor: m.st.Floor}
	m.mu.Unlock()
	if snapshot != nil {
		if err := snapshot(filepath.Join(m.cfg.Dir, SnapshotFile)); err != nil {
			return fmt.Errorf("firmware: store snapshot: %w", err)
		}
	}
	if u.Source == SourceRollback { // the previous version is in its slot already
		m.mu.Lock()
		defer m.mu.Unlock()
		m.st.Update.Snapshot = snapshot != nil
		return m.save()
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	h, err := ReadHeader(br, m.cfg.Keys)
	if err != nil {
		return err
	}
	if err := t.Accept(h.Manifest); err != nil {
		return err
	}
	if want != "" && h.ManifestSHA256 != want {
		return fmt.Errorf("%w: the artifact changed since it was verified", ErrSignature)
	}
	if err := m.cfg.Backend.Install(to, br, h, progress); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Update.Snapshot = snapshot != nil
	return m.save()
}

// Switch makes the installed slot run next, on trial, recording the health the new
// version must match. The caller then restarts (Backend.Restart, posd exits with
// ExitRestart).
func (m *Machine) Switch(before Health) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil {
		return ErrNotFound
	}
	u.Before = before
	u.Attempts = 0
	if err := m.step(StepSwitch); err != nil {
		return err
	}
	if err := m.cfg.Backend.Switch(u.To); err != nil {
		return err
	}
	m.hook(HookSwitchLinked)
	u.Deadline = time.Time{}
	return m.step(StepVerifyNew)
}

// Trial returns the update when the running version is on trial.
func (m *Machine) Trial(version string) (Update, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil || u.Step != StepVerifyNew || u.Version != version {
		return Update{}, false
	}
	return *u, true
}

// Commit makes the new version permanent and raises the floor to its min_version.
func (m *Machine) Commit() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil || (u.Step != StepVerifyNew && u.Step != StepCommit) {
		return fmt.Errorf("firmware: nothing on trial to commit")
	}
	if err := m.step(StepCommit); err != nil {
		return err
	}
	return m.commitLocked()
}

func (m *Machine) commitLocked() error {
	u := m.st.Update
	if err := m.cfg.Backend.Commit(u.To); err != nil {
		return err
	}
	m.hook(HookCommitSlot)
	m.st.Slot, m.st.Version = u.To, u.Version
	m.st.Previous = &Previous{Slot: u.From, Version: u.FromVersion}
	if CompareVersions(u.MinVersion, m.st.Floor) > 0 {
		m.st.Floor = u.MinVersion
	}
	os.Remove(filepath.Join(m.cfg.Dir, SnapshotFile))
	if u.Source != "usb" {
		os.Remove(u.File)
	}
	m.finish(ResultSucceeded, "")
	return m.save()
}

// RequestRollback marks the update for rollback with a reason; the rollback itself
// is done by Boot before the next start (posd exits with ExitRestart), so the store
// is restored while no posd has it open.
func (m *Machine) RequestRollback(reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil || (u.Step != StepSwitch && u.Step != StepVerifyNew && u.Step != StepRollback) {
		return fmt.Errorf("firmware: nothing on trial to roll back")
	}
	u.Reason = reason
	return m.step(StepRollback)
}

// rollbackLocked puts the previous slot back, restores the snapshot, and records
// the failure; mu is held.
func (m *Machine) rollbackLocked() error {
	u := m.st.Update
	if u.Step != StepRollback {
		if err := m.step(StepRollback); err != nil {
			return err
		}
	}
	if err := m.cfg.Backend.Rollback(u.From); err != nil {
		return err
	}
	m.hook(HookRollbackSlot)
	snap := filepath.Join(m.cfg.Dir, SnapshotFile)
	if u.Snapshot && m.cfg.DB != "" {
		if err := restoreFile(snap, m.cfg.DB); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	m.hook(HookRollbackRestored)
	os.Remove(snap)
	m.st.Slot = u.From
	if u.Source != "usb" {
		os.Remove(u.File)
	}
	m.finish(ResultFailed, "rolled back: "+u.Reason)
	return m.save()
}

// restoreFile copies src over dst by a temporary file and rename.
func restoreFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".restore-*")
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("firmware: restore the store snapshot: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

// BootAction is what Boot did.
type BootAction struct {
	// RolledBack is set when Boot rolled back, with the reason.
	RolledBack string
	// Trial is set when the start about to happen is a trial of the new version.
	Trial bool
	// Reboot is set (tryboot) when the device must reboot to reach the right slot.
	Reboot bool
}

// Boot runs before every start of posd (the supervisor, or systemd's ExecStartPre
// `posctl firmware boot`) while no posd runs. It finishes what an interrupted update
// left: a switch is redone, a commit or rollback completed, a trial's start counted,
// and a trial that crashed MaxAttempts times, ran past its deadline or did not come
// up at all rolls back. After Boot the slot that starts is one that works or the new
// version on a counted trial.
func (m *Machine) Boot(ctx context.Context) (BootAction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil {
		return BootAction{}, nil
	}
	run, err := m.cfg.Backend.Running()
	if err != nil {
		return BootAction{}, err
	}
	rollback := func(reason string) (BootAction, error) {
		if u.Reason == "" {
			u.Reason = reason
		}
		reason = u.Reason
		if err := m.rollbackLocked(); err != nil {
			return BootAction{}, err
		}
		a := BootAction{RolledBack: reason}
		if r, err := m.cfg.Backend.Running(); err == nil && r != m.st.Slot {
			a.Reboot = true
		}
		return a, nil
	}
	switch u.Step {
	case StepDownload, StepVerify, StepInstall:
		// Nothing switched yet; posd resumes the work. Make sure the old slot runs.
		if run != u.From {
			if err := m.cfg.Backend.Rollback(u.From); err != nil {
				return BootAction{}, err
			}
		}
		return BootAction{}, nil
	case StepSwitch:
		if err := m.cfg.Backend.Switch(u.To); err != nil {
			return rollback("the switch failed: " + err.Error())
		}
		m.hook(HookSwitchLinked)
		if err := m.step(StepVerifyNew); err != nil {
			return BootAction{}, err
		}
		if m.cfg.Backend.Name() == "tryboot" {
			return BootAction{Reboot: true, Trial: true}, nil
		}
		fallthrough
	case StepVerifyNew:
		if run != u.To && m.cfg.Backend.Name() == "tryboot" && u.Attempts > 0 {
			return rollback("the new version did not boot")
		}
		now := m.cfg.Now()
		if !u.Deadline.IsZero() && now.After(u.Deadline) {
			return rollback(fmt.Sprintf("the health check did not pass within %s", m.cfg.VerifyTimeout))
		}
		if u.Attempts >= m.cfg.MaxAttempts {
			return rollback(fmt.Sprintf("the new version stopped %d times before its health check passed", u.Attempts))
		}
		u.Attempts++
		if u.Deadline.IsZero() {
			u.Deadline = now.Add(m.cfg.VerifyTimeout * time.Duration(m.cfg.MaxAttempts+1))
		}
		return BootAction{Trial: true}, m.save()
	case StepCommit:
		return BootAction{}, m.commitLocked()
	case StepRollback:
		return rollback("rolled back")
	}
	return BootAction{}, fmt.Errorf("firmware: unknown step %q in %s", u.Step, StateFile)
}

// Rollback rolls back by hand (posctl firmware rollback): an update on trial or not
// yet switched is abandoned, and the previous slot runs again.
func (m *Machine) Rollback(reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.st.Update
	if u == nil {
		return fmt.Errorf("firmware: no update in progress; install the previous version with posctl flash")
	}
	switch u.Step {
	case StepDownload, StepVerify, StepInstall:
		m.finish(ResultFailed, "cancelled: "+reason)
		return m.save()
	case StepCommit:
		return fmt.Errorf("firmware: the update is committing")
	}
	u.Reason = reason
	return m.rollbackLocked()
}
