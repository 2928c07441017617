package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/fleet"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/printer"
	wsync "github.com/walletless/walletless/sync"
)

// ErrRestart is what Run returns after it switched to new firmware or asked for a
// rollback: the supervisor must start SLOTS_DIR/current/posd again. posd exits with
// firmware.ExitRestart (75) for it.
var ErrRestart = errors.New("daemon: the firmware slot changed; posd must be started again")

// FirmwareDir is the firmware machine's directory under the data directory.
const FirmwareDir = "firmware"

// fwAgent runs firmware updates for posd: it takes artifacts from the local API,
// the watched USB directory and signed MQTT jobs, one at a time; waits for a quiet
// counter; installs, switches and restarts; and on the new version checks health
// and commits or rolls back. Sales are refused (api.ErrUpdating) from the moment the
// counter is quiet until the new version commits.
type fwAgent struct {
	rt      *instance
	m       *firmware.Machine
	cfg     config.Firmware
	keys    []minisign.PublicKey
	device  string
	version string
	log     *slog.Logger
	client  *http.Client

	gate    atomic.Bool // new sales are refused
	info    atomic.Pointer[fwProgress]
	reqs    chan fwRequest
	restart chan string // a rollback asked through the API
	reports chan firmware.JobReport

	mu     stdsync.Mutex
	queued map[string]bool // guarded by mu: job ids queued or running
}

type fwRequest struct {
	u   firmware.Update
	job *firmware.Job
}

// fwProgress is what /v1/status shows while an update runs.
type fwProgress struct {
	Step            string    `json:"step"`
	Version         string    `json:"version"`
	Percent         int       `json:"percent"`
	EstimateSeconds int       `json:"estimate_seconds"`
	Since           time.Time `json:"since"`
	Reason          string    `json:"reason,omitempty"`
}

// OpenFirmware opens the firmware machine cfg describes (firmware.slots_dir must be
// set): posd's agent and `posctl firmware boot` use the same one.
func OpenFirmware(cfg config.Config, log *slog.Logger) (*firmware.Machine, []minisign.PublicKey, error) {
	fc := cfg.Firmware
	if fc.SlotsDir == "" {
		return nil, nil, fmt.Errorf("daemon: firmware.slots_dir is not set: firmware updates are off")
	}
	keys, err := fleet.ParseKeys(cfg.FirmwareKeys())
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: firmware keys: %w", err)
	}
	var backend firmware.Backend = firmware.Files{Dir: fc.SlotsDir}
	if fc.Backend == "tryboot" {
		parts := fc.TrybootPartitions
		if len(parts) == 0 {
			parts = map[string]int{firmware.SlotA: 2, firmware.SlotB: 3}
		}
		backend = firmware.Tryboot{BootDir: fc.BootDir, Partitions: parts, Devices: fc.TrybootDevices, StagingDir: fc.SlotsDir, PartitionFile: fc.PartitionFile, Reboot: fc.Reboot}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(cfg.DataDir, FirmwareDir)
	m, err := firmware.OpenMachine(firmware.MachineConfig{
		Dir: dir, Backend: backend, Keys: keys,
		Arch: fc.FirmwareArch(), Board: fc.Board, DB: filepath.Join(cfg.DataDir, DBFile),
		MaxAttempts: fc.MaxAttempts, VerifyTimeout: time.Duration(fc.VerifyTimeout), Log: log,
		Hook: testPause(dir),
	})
	return m, keys, err
}

// TestPauseEnv names a crash point at which this process stops for good, for the
// tests that SIGKILL posd and `posctl firmware boot` in every state of an update
// (internal/e2e TestFirmwareKilledInEachState). Its value is PROGRAM:POINT, e.g.
// "posd:switch" or "posctl:rollback:slot": PROGRAM is the name the binary runs as
// (posd or posctl), POINT a step or one of firmware.HookPoints (and "trial", the
// start of a trial's health check in posd), optionally with #N for its Nth passage
// in this process (install#2: the payloads are in the slot, the state not yet
// updated). When the process reaches the point it writes DATA_DIR/firmware/paused
// (the value, a newline and its process id) and sleeps until it is killed. Never set
// it on a terminal: an update would stop there.
const TestPauseEnv = "WALLETLESS_FIRMWARE_TEST_PAUSE"

// PausedFile is the file a process paused by TestPauseEnv writes.
const PausedFile = "paused"

// testPause returns the pause hook TestPauseEnv asks for in this process, or nil.
func testPause(dir string) func(string) {
	v := os.Getenv(TestPauseEnv)
	prog, point, ok := strings.Cut(v, ":")
	if !ok || prog != filepath.Base(os.Args[0]) {
		return nil
	}
	point, nth, _ := strings.Cut(point, "#")
	want, err := strconv.Atoi(nth)
	if err != nil {
		want = 1
	}
	seen := 0
	return func(p string) {
		if p != point {
			return
		}
		if seen++; seen != want {
			return
		}
		os.WriteFile(filepath.Join(dir, PausedFile), fmt.Appendf(nil, "%s\n%d\n", v, os.Getpid()), 0o600)
		fmt.Fprintf(os.Stderr, "%s: paused at the firmware crash point %q (%s) until killed\n", prog, point, TestPauseEnv)
		for {
			time.Sleep(time.Hour)
		}
	}
}

// openFirmware builds the agent when firmware.slots_dir is set.
func (rt *instance) openFirmware(cfg config.Config) error {
	fc := cfg.Firmware
	if fc.SlotsDir == "" {
		return nil
	}
	log := rt.log.With("component", "firmware")
	m, keys, err := OpenFirmware(cfg, log)
	if err != nil {
		return err
	}
	rt.fw = &fwAgent{
		rt: rt, m: m, cfg: fc, keys: keys, device: cfg.DeviceID, version: rt.opts.Version, log: log,
		client: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 30 * time.Second, TLSHandshakeTimeout: 15 * time.Second}}, reqs: make(chan fwRequest, 4), restart: make(chan string, 1),
		reports: make(chan firmware.JobReport, 64), queued: map[string]bool{},
	}
	// A trial refuses sales from its first moment, before the sale path starts.
	if _, ok := m.Trial(rt.opts.Version); ok {
		rt.fw.gate.Store(true)
	}
	if err := m.NoteVersion(rt.opts.Version); err != nil {
		return err
	}
	return nil
}

// run is the agent's goroutine; it returns ErrRestart when posd must restart.
func (a *fwAgent) run(ctx context.Context) error {
	go a.reporter(ctx)
	a.reportLast()
	st := a.m.State()
	if u, ok := a.m.Trial(a.version); ok {
		if err := a.verifyNew(ctx, u); err != nil {
			return err
		}
	} else if u := st.Update; u != nil {
		switch u.Step {
		case firmware.StepDownload, firmware.StepVerify, firmware.StepInstall:
			a.log.Info("resuming an interrupted firmware update", "id", u.ID, "step", u.Step)
			a.mark(u.ID, true)
			if err := a.process(ctx, fwRequest{u: *u}, true); err != nil {
				return err
			}
		default:
			a.log.Error("a firmware update waits in a step only a start can finish: run `posctl firmware boot` before posd (docs/firmware.md)", "id", u.ID, "step", u.Step, "version", u.Version)
		}
	}
	if a.cfg.WatchDir != "" {
		go firmware.Watch(ctx, a.cfg.WatchDir, time.Duration(a.cfg.WatchInterval), a.fromUSB)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case reason := <-a.restart:
			a.log.Warn("firmware rollback requested", "reason", reason)
			return ErrRestart
		case r := <-a.reqs:
			if err := a.process(ctx, r, false); err != nil {
				return err
			}
		}
	}
}

func (a *fwAgent) mark(id string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if on {
		a.queued[id] = true
	} else {
		delete(a.queued, id)
	}
}

func (a *fwAgent) isQueued(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queued[id]
}

// submit queues a request without blocking; false when the queue is full.
func (a *fwAgent) submit(r fwRequest) bool {
	a.mark(r.u.ID, true)
	select {
	case a.reqs <- r:
		return true
	default:
		a.mark(r.u.ID, false)
		return false
	}
}

// process runs one update up to the switch.
func (a *fwAgent) process(ctx context.Context, r fwRequest, resumed bool) error {
	u := r.u
	defer a.mark(u.ID, false)
	defer a.info.Store(nil)
	if !resumed && u.Source != firmware.SourceRollback { // a rollback has begun already
		if u.Source == "job" {
			os.Remove(u.File) // a part of another job
		}
		if err := a.m.Begin(u); err != nil {
			a.report(u, firmware.JobRejected, "", err.Error())
			return nil
		}
	}
	fail := func(err error) error {
		a.gate.Store(false)
		if ferr := a.m.Fail(err); ferr != nil {
			a.log.Error("firmware: recording the failure", "err", ferr)
		}
		status := firmware.JobFailed
		if firmware.Rejection(err) {
			status = firmware.JobRejected
		}
		a.log.Warn("firmware update refused", "id", u.ID, "err", err)
		a.report(u, status, "", err.Error())
		return nil
	}
	est := 15 + int(time.Duration(a.cfg.VerifyTimeout).Seconds()/4)
	if u.Source == firmware.SourceRollback {
		// The previous version is in its slot: nothing to download or verify.
		if err := a.waitQuiet(ctx, u); err != nil {
			return nil
		}
		return a.installAndSwitch(ctx, u, est)
	}
	if a.m.State().Update.Step == firmware.StepDownload && u.URL != "" {
		a.progress(u, "download", 0, "")
		err := firmware.Download(ctx, a.client, u.URL, u.File, 0, func(done, total int64) {
			if total > 0 {
				a.progress(u, "download", int(done*100/total), "")
			}
		})
		if ctx.Err() != nil {
			return nil // resumed at the next start
		}
		if err != nil {
			return fail(err)
		}
	}
	a.progress(u, "verify", 0, "")
	h, err := a.m.Check()
	if err != nil {
		return fail(err)
	}
	if r.job != nil && h.Manifest.Version != r.job.Version {
		return fail(fmt.Errorf("%w: the artifact is version %s, the job names %s", firmware.ErrMalformed, h.Manifest.Version, r.job.Version))
	}
	u.Version = h.Manifest.Version
	if err := a.waitQuiet(ctx, u); err != nil {
		return nil // ctx ended: resumed at the next start
	}
	return a.installAndSwitch(ctx, u, est+int(h.Manifest.Size()/(4<<20)))
}

// installAndSwitch installs (a store snapshot, then the payloads) on a quiet counter
// and switches; ErrRestart once switched.
func (a *fwAgent) installAndSwitch(ctx context.Context, u firmware.Update, est int) error {
	a.setInfo(fwProgress{Step: "install", Version: u.Version, EstimateSeconds: est, Since: time.Now().UTC()})
	err := a.m.Install(a.rt.st.Snapshot, func(done, total int64) {
		if total > 0 {
			a.progress(u, "install", int(done*100/total), "")
		}
	})
	if err != nil {
		a.gate.Store(false)
		if ferr := a.m.Fail(err); ferr != nil {
			a.log.Error("firmware: recording the failure", "err", ferr)
		}
		status := firmware.JobFailed
		if firmware.Rejection(err) {
			status = firmware.JobRejected
		}
		a.log.Warn("firmware install failed", "id", u.ID, "err", err)
		a.report(u, status, "", err.Error())
		return nil
	}
	a.progress(u, "switch", 0, "")
	before := a.health(ctx)
	a.log.Info("firmware health before the switch", "scanner", before.Scanner, "printer", before.PrinterState, "printer_detail", before.PrinterDetail)
	if err := a.m.Switch(before); err != nil {
		a.log.Error("firmware switch failed; the next start finishes or rolls it back", "err", err)
		return ErrRestart
	}
	a.log.Info("firmware switched; restarting on the new version", "version", u.Version)
	a.report(u, firmware.JobInProgress, "switch", "")
	if err := a.m.Backend().Restart(ctx, true); err != nil {
		a.log.Error("firmware restart", "err", err)
	}
	return ErrRestart
}

// waitQuiet returns with the gate closed once no sale is in progress and the outbox
// is empty. It closes the gate first (new sales are refused, "updating") and lets
// the running work drain for up to a drain window (max_wait, at most a minute); if
// the counter is not quiet by then it reopens the gate, reports the job deferred
// after max_wait in all, and tries again a little later, sales going on in between.
func (a *fwAgent) waitQuiet(ctx context.Context, u firmware.Update) error {
	start := time.Now()
	deferred := false
	drain := min(time.Duration(a.cfg.MaxWait), time.Minute)
	for {
		a.gate.Store(true)
		end := time.Now().Add(drain)
		for {
			why := a.busy(ctx)
			if why == "" {
				return nil
			}
			a.progress(u, "waiting", 0, why)
			if time.Now().After(end) {
				break
			}
			select {
			case <-ctx.Done():
				a.gate.Store(false)
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		a.gate.Store(false)
		if !deferred && time.Since(start) >= time.Duration(a.cfg.MaxWait) {
			deferred = true
			reason := "deferred: the counter was busy for " + time.Duration(a.cfg.MaxWait).String() + "; installing at the next quiet moment"
			a.log.Warn("firmware install deferred", "id", u.ID)
			a.report(u, firmware.JobInProgress, "waiting", reason)
			a.setInfo(fwProgress{Step: "waiting", Version: u.Version, Since: time.Now().UTC(), Reason: reason})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second): // sales go on; then drain again
		}
	}
}

// busy says what keeps the counter from being quiet; "" when it is.
func (a *fwAgent) busy(ctx context.Context) string {
	a.rt.mu.Lock()
	gen := a.rt.gen
	a.rt.mu.Unlock()
	if gen == nil {
		return "the sale path is starting"
	}
	s, err := gen.engine.Stats(ctx)
	if err != nil {
		return err.Error()
	}
	switch {
	case s.Waiting != "":
		return "a sale waits for a code"
	case s.Authorizing > 0:
		return "a sale is authorizing"
	case s.InDoubt > 0:
		return "a sale is in doubt"
	}
	depth, _, err := a.rt.st.OutboxStats()
	if err != nil {
		return err.Error()
	}
	if depth > 0 || gen.link.InFlight() > 0 {
		return fmt.Sprintf("%d outbox entries wait for the cloud", depth)
	}
	return ""
}

// health is what the running posd sees of its parts: the scanner connected or not,
// and what the printer says of itself (ready, paper out…), asked now.
func (a *fwAgent) health(ctx context.Context) firmware.Health {
	a.rt.mu.Lock()
	gen := a.rt.gen
	a.rt.mu.Unlock()
	h := firmware.Health{Scanner: a.rt.scanStatus.State().Connected, Printer: gen != nil}
	h.PrinterState, h.PrinterDetail = printerHealth(ctx, gen)
	return h
}

// printerHealth asks the generation's printer for its status.
func printerHealth(ctx context.Context, gen *generation) (state, detail string) {
	if gen == nil || gen.receipts == nil || gen.receipts.prn == nil {
		return firmware.PrinterAbsent, ""
	}
	sr, ok := gen.receipts.prn.(printer.StatusReader)
	if !ok {
		return firmware.PrinterNoStatus, ""
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := sr.Status(ctx)
	switch {
	case err != nil:
		return firmware.PrinterUnreachable, err.Error()
	case !st.Ready():
		return firmware.PrinterNotReady, st.String()
	}
	return firmware.PrinterOK, ""
}

// verifyNew is the health check of a version on trial: the store opened (with its
// migrations) before this runs; the broker must be reached and the scanner and
// printer be at least as healthy as before the switch, within verify_timeout.
func (a *fwAgent) verifyNew(ctx context.Context, u firmware.Update) error {
	a.gate.Store(true)
	timeout := time.Duration(a.cfg.VerifyTimeout)
	deadline := time.Now().Add(timeout)
	a.setInfo(fwProgress{Step: "verify_new", Version: u.Version, EstimateSeconds: int(timeout.Seconds()), Since: time.Now().UTC()})
	a.report(u, firmware.JobInProgress, "verify_new", "")
	a.log.Info("firmware on trial: checking health before commit", "version", u.Version, "attempt", u.Attempts, "timeout", timeout)
	if p := testPause(a.m.Dir()); p != nil {
		p("trial")
	}
	missing := ""
	for {
		missing = a.unhealthy(ctx, u.Before)
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			reason := "health check failed within " + timeout.String() + ": " + missing
			a.log.Error("firmware on trial is not healthy: rolling back", "version", u.Version, "reason", reason)
			if err := a.m.RequestRollback(reason); err != nil {
				a.log.Error("firmware rollback request", "err", err)
			}
			a.report(u, firmware.JobInProgress, "rollback", reason)
			return ErrRestart
		}
		select {
		case <-ctx.Done():
			return nil // stopped: the next start counts another attempt
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := a.m.Commit(); err != nil {
		a.log.Error("firmware commit failed; the next start finishes it", "err", err)
		return ErrRestart
	}
	a.gate.Store(false)
	a.info.Store(nil)
	a.log.Info("firmware committed", "version", u.Version)
	a.reportLast()
	return nil
}

// unhealthy says what the trial still misses; "" when healthy. The printer is asked
// last (it costs a round trip), once the rest is healthy.
func (a *fwAgent) unhealthy(ctx context.Context, before firmware.Health) string {
	a.rt.mu.Lock()
	gen := a.rt.gen
	a.rt.mu.Unlock()
	switch {
	case gen == nil:
		return "the sale path did not start (printer or link)"
	case !gen.link.Online():
		reason := "the broker was not reached"
		if e := gen.link.LastError(); e != "" {
			reason += ": " + e
		}
		return reason
	}
	return a.health(ctx).Worse(before)
}

func (a *fwAgent) setInfo(p fwProgress) { a.info.Store(&p) }

func (a *fwAgent) progress(u firmware.Update, step string, pct int, reason string) {
	prev := a.info.Load()
	p := fwProgress{Step: step, Version: u.Version, Percent: pct, Since: time.Now().UTC(), Reason: reason}
	if prev != nil && prev.Step == step {
		p.Since, p.EstimateSeconds = prev.Since, prev.EstimateSeconds
		if prev.Percent/10 == pct/10 && prev.Reason == reason {
			a.info.Store(&p)
			return
		}
	}
	a.info.Store(&p)
	a.report(u, firmware.JobInProgress, step, reason)
}

// gated wraps the sale engine for the API: new sales, refunds and batch closes are refused while
// an update holds the gate; a sale already running goes on to its end.
func (rt *instance) gated(e *payment.Engine) api.Sales {
	if rt.fw == nil {
		return e
	}
	return gatedSales{Sales: e, a: rt.fw}
}

type gatedSales struct {
	api.Sales
	a *fwAgent
}

func (g gatedSales) refused() error {
	if !g.a.gate.Load() {
		return nil
	}
	if p := g.a.info.Load(); p != nil && p.EstimateSeconds > 0 {
		return fmt.Errorf("%w (%s of version %s, about %d s)", api.ErrUpdating, p.Step, p.Version, p.EstimateSeconds)
	}
	return api.ErrUpdating
}

func (g gatedSales) Create(ctx context.Context, amountMinor int64, currency string) (payment.Sale, error) {
	if err := g.refused(); err != nil {
		return payment.Sale{}, err
	}
	return g.Sales.Create(ctx, amountMinor, currency)
}

func (g gatedSales) Present(ctx context.Context, amountMinor int64, currency string) (payment.Sale, error) {
	if err := g.refused(); err != nil {
		return payment.Sale{}, err
	}
	return g.Sales.Present(ctx, amountMinor, currency)
}

// CloseBatch is refused too: a batch closed on a version on trial would be open
// again after a rollback restored the store while the cloud had it closed.
func (g gatedSales) CloseBatch(ctx context.Context) (payment.Batch, error) {
	if err := g.refused(); err != nil {
		return payment.Batch{}, err
	}
	return g.Sales.CloseBatch(ctx)
}

func (g gatedSales) Refund(ctx context.Context, saleID string, amountMinor int64) (payment.Refund, error) {
	if err := g.refused(); err != nil {
		return payment.Refund{}, err
	}
	return g.Sales.Refund(ctx, saleID, amountMinor)
}

// addFirmwareStatus adds the firmware's part of GET /v1/status: "updating" with a
// step and an estimate while an update holds the counter.
func (rt *instance) addFirmwareStatus(s map[string]any) {
	if rt.fw == nil {
		return
	}
	st := rt.fw.m.State()
	fw := map[string]any{"version": rt.opts.Version, "slot": st.Slot, "floor": st.Floor}
	if st.Last != nil {
		fw["last"] = st.Last
	}
	s["firmware"] = fw
	if p := rt.fw.info.Load(); p != nil {
		s["updating"] = p
		if rt.fw.gate.Load() {
			s["state"] = "updating"
		}
	}
}

// Status is GET /v1/firmware.
func (a *fwAgent) Status() any {
	st := a.m.State()
	out := map[string]any{"running": a.version, "backend": a.m.Backend().Name(), "state": st, "target": a.m.Target()}
	if p := a.info.Load(); p != nil {
		out["updating"] = p
	}
	return out
}

// FlashResult says what a flash will change.
type FlashResult struct {
	ID         string             `json:"id,omitempty"`
	Running    string             `json:"running"`
	Version    string             `json:"version"`
	MinVersion string             `json:"min_version,omitempty"`
	Floor      string             `json:"floor,omitempty"`
	Arch       string             `json:"arch"`
	Board      string             `json:"board"`
	KeyID      string             `json:"key_id"`
	Payloads   []firmware.Payload `json:"payloads"`
	Slot       string             `json:"slot"` // the slot it is installed into
}

// Flash is POST /v1/firmware.
func (a *fwAgent) Flash(ctx context.Context, body io.Reader, checkOnly bool) (any, error) {
	if st := a.m.State(); st.Update != nil {
		return nil, fmt.Errorf("%w (%s to %s, %s)", firmware.ErrBusy, st.Update.ID, st.Update.Version, st.Update.Step)
	}
	id := fmt.Sprintf("flash-%d", time.Now().UnixNano())
	path := filepath.Join(a.m.Dir(), id+".wlf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	_, err = io.Copy(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(path)
		}
	}()
	if err != nil {
		return nil, err
	}
	h, err := firmware.Verify(path, a.keys, a.m.Target())
	if err != nil {
		return nil, err
	}
	run, _ := a.m.Backend().Running()
	res := FlashResult{Running: a.version, Version: h.Manifest.Version, MinVersion: h.Manifest.MinVersion, Floor: a.m.Target().Floor,
		Arch: h.Manifest.Arch, Board: h.Manifest.Board, KeyID: h.KeyID, Payloads: h.Manifest.Payloads, Slot: firmware.Other(run)}
	if checkOnly {
		return res, nil
	}
	res.ID = id
	if !a.submit(fwRequest{u: firmware.Update{ID: id, Source: "flash", File: path, Step: firmware.StepVerify}}) {
		return nil, fmt.Errorf("%w: requests are queued already", firmware.ErrBusy)
	}
	keep = true
	return res, nil
}

// Rollback is POST /v1/firmware/rollback: a version on trial is abandoned (posd
// restarts on the previous slot, the store snapshot is restored); with no update
// in progress the committed version is left for the previous one, still in the other
// slot (firmware.Machine.BeginRollback: on a quiet counter, with a health check).
func (a *fwAgent) Rollback(ctx context.Context) error {
	st := a.m.State()
	if st.Update == nil {
		u, err := a.m.BeginRollback(fmt.Sprintf("rollback-%d", time.Now().UnixNano()))
		if err != nil {
			return err
		}
		if !a.submit(fwRequest{u: u}) {
			a.m.Fail(errors.New("the firmware queue is full"))
			return fmt.Errorf("%w: requests are queued already", firmware.ErrBusy)
		}
		return nil
	}
	if st.Update.Step != firmware.StepVerifyNew {
		return fmt.Errorf("daemon: firmware update %s is in step %s; a rollback is possible once it runs on trial or has committed", st.Update.ID, st.Update.Step)
	}
	if err := a.m.RequestRollback("requested through the local API"); err != nil {
		return err
	}
	select {
	case a.restart <- "requested through the local API":
	default:
	}
	return nil
}

// fromUSB takes a .wlf file the watch found.
func (a *fwAgent) fromUSB(path string) {
	info, err := os.Stat(path)
	if err != nil {
		return
	}
	id := fmt.Sprintf("usb-%s-%d", filepath.Base(path), info.Size())
	if st := a.m.State(); st.Last != nil && st.Last.ID == id || a.isQueued(id) {
		return
	}
	h, err := firmware.Verify(path, a.keys, a.m.Target())
	if err == nil && h.Manifest.Version == a.version {
		a.log.Info("USB firmware is the running version: nothing to do", "file", path)
		return
	}
	a.log.Info("firmware found on the USB stick", "file", path)
	if !a.submit(fwRequest{u: firmware.Update{ID: id, Source: "usb", File: path, Step: firmware.StepVerify}}) {
		a.log.Warn("firmware queue full; the USB file waits for the next poll", "file", path)
	}
}

// subscriptions are the job slot topics, when the device trusts keys.
func (rt *instance) firmwareSubscriptions(ctx context.Context, cfg config.Config) []wsync.Subscription {
	a := rt.fw
	if a == nil {
		return nil
	}
	var subs []wsync.Subscription
	for _, t := range firmware.JobTopics(cfg.DeviceID, cfg.Fleet.Groups) {
		subs = append(subs, wsync.Subscription{Filter: t, Handle: func(topic string, payload []byte) { a.onJob(topic, payload) }})
	}
	return subs
}

// onJob handles a job slot message (on paho's goroutine: it never blocks).
func (a *fwAgent) onJob(topic string, payload []byte) {
	j, err := firmware.OpenJob(a.keys, payload)
	if errors.Is(err, fleet.ErrEmpty) {
		return
	}
	if err != nil {
		a.log.Warn("firmware job refused", "topic", topic, "err", err)
		a.report(firmware.Update{ID: "unknown"}, firmware.JobRejected, "", err.Error())
		return
	}
	if firmware.JobTopic(j.Target) != topic {
		a.report(firmware.Update{ID: j.JobID, Version: j.Version}, firmware.JobRejected, "", "the job's target does not match the topic it came on")
		return
	}
	if !j.For(a.device) {
		return
	}
	st := a.m.State()
	switch {
	case a.isQueued(j.JobID), st.Update != nil && st.Update.ID == j.JobID:
		return
	case st.Last != nil && st.Last.ID == j.JobID:
		a.reportLast()
		return
	case j.Version == a.version && st.Update == nil:
		a.report(firmware.Update{ID: j.JobID, Version: j.Version}, firmware.JobSucceeded, "", "already running "+j.Version)
		return
	}
	u := firmware.Update{ID: j.JobID, Source: "job", URL: j.URL, File: filepath.Join(a.m.Dir(), firmware.DownloadFile), Version: j.Version, ManifestSHA256: j.ManifestSHA256, Step: firmware.StepDownload}
	if !a.submit(fwRequest{u: u, job: &j}) {
		a.report(u, firmware.JobRejected, "", "another firmware update is queued")
		return
	}
	a.report(u, firmware.JobQueued, "", "")
}

// report queues a job report; only jobs (and refusals of jobs) are reported.
func (a *fwAgent) report(u firmware.Update, status, step, reason string) {
	if u.Source != "job" && u.Source != "" {
		return
	}
	r := firmware.JobReport{V: 1, Device: a.device, JobID: u.ID, Version: u.Version, Status: status, Step: step, Reason: reason, Running: a.version, At: time.Now().UTC()}
	if p := a.info.Load(); p != nil && status == firmware.JobInProgress && p.Step == step {
		r.Percent = p.Percent
	}
	select {
	case a.reports <- r:
	default:
		a.log.Warn("firmware report dropped: queue full", "job", u.ID, "status", status)
	}
}

// reportLast reports how the last job ended (after a restart, from either version).
func (a *fwAgent) reportLast() {
	st := a.m.State()
	l := st.Last
	if l == nil {
		return
	}
	status := map[string]string{firmware.ResultSucceeded: firmware.JobSucceeded, firmware.ResultFailed: firmware.JobFailed, firmware.ResultRejected: firmware.JobRejected}[l.Result]
	if len(l.ID) < 4 || strings.HasPrefix(l.ID, "usb-") || strings.HasPrefix(l.ID, "flash-") || strings.HasPrefix(l.ID, "rollback-") {
		return
	}
	a.report(firmware.Update{ID: l.ID, Version: l.Version, Source: "job"}, status, "", l.Reason)
}

// reporter publishes reports in order, retained; while offline it keeps the latest.
func (a *fwAgent) reporter(ctx context.Context) {
	var pending []firmware.JobReport
	for {
		var tick <-chan time.Time
		if len(pending) > 0 {
			tick = time.After(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case r := <-a.reports:
			pending = append(pending, r)
		case <-tick:
		}
		for len(pending) > 0 {
			b, err := marshalReport(pending[0])
			if err == nil {
				err = a.rt.publishReport(firmware.JobReportTopic(a.device), b)
			}
			if err != nil {
				if len(pending) > 16 {
					pending = pending[len(pending)-16:]
				}
				break
			}
			pending = pending[1:]
		}
	}
}

func marshalReport(r firmware.JobReport) ([]byte, error) { return json.Marshal(r) }
