package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/device"
	"github.com/walletless/walletless/fleet"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/sdnotify"
	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/pairing"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/printer"
	"github.com/walletless/walletless/scanner"
	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// Options are what Run needs besides the configuration.
type Options struct {
	Config  config.Config
	Demo    bool      // embedded broker and in-process posgw
	Stdin   io.Reader // scanner source "stdin" reads this
	Log     *slog.Logger
	Version string
	// Ready, if set, is called once everything listens. A terminal that starts
	// unpaired calls it twice: once unpaired (DeviceID empty), once paired.
	Ready func(Info)
	// Notify, if set, is told READY=1 once the API listens, STOPPING=1 at the end,
	// and WATCHDOG=1 every Watchdog/2 while the sale engine answers through its own
	// loop (systemd's Type=notify and WatchdogSec=; cmd/posd reads both from the
	// environment).
	Notify   *sdnotify.Notifier
	Watchdog time.Duration
}

// Info describes a running posd.
type Info struct {
	APIURL    string // http://host:port
	BrokerURL string
	DataDir   string
	Printer   string
	Scanner   string
	DeviceID  string
	// Token is the admin (manager) token, for the demo's banner; TLSFingerprint is the
	// API certificate's SHA-256 when it serves HTTPS.
	Token          string
	TLSFingerprint string
	// PageURL is the clerk's counter page.
	PageURL string
}

// DBFile and LedgerFile are the bbolt files under the data directory.
const (
	DBFile     = "posd.db"
	LedgerFile = "posgw.db"
)

// Run runs posd until ctx is done.
//
// The store, the local API's listener and door, the scanner and the fleet agent live
// for the whole run. The sale path (printer, indicators, receipts, sale engine, cloud
// link and the API's handlers) is a generation built from the configuration in force;
// an applied fleet configuration replaces the generation without a restart of posd
// (see fleet.go).
//
// A configuration without a device id is a terminal that is not paired yet: Run loads
// the saved pairing (DATA/pairing.json) over it, or runs unpaired until a pairing QR
// is scanned (pairing.go).
func Run(ctx context.Context, opts Options) error {
	if opts.Config.DeviceID == "" && !opts.Demo {
		if err := CheckConfig(opts.Config, false); err != nil {
			return err
		}
		cfg, paired, err := withPairing(opts.Config)
		if err != nil {
			return err
		}
		if !paired {
			return runUnpaired(ctx, opts)
		}
		opts.Config = cfg
	}
	return runPaired(ctx, opts, nil)
}

// runPaired runs a terminal with a device id; sc is the scanner the unpaired phase started
// (nil: run starts its own).
func runPaired(ctx context.Context, opts Options, sc *sharedScanner) (err error) {
	cfg := opts.Config
	// Everything posd checks before it starts: the config's own checks and the
	// settings that need more (merchant.emv_qr, the rules, the printer profile).
	if err := CheckConfig(cfg, opts.Demo); err != nil {
		return err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := secretfile.PrivateDir(cfg.DataDir); err != nil {
		return fmt.Errorf("daemon: data dir: %w", err)
	}
	// Verify: a damaged file is refused at start with the command that salvages it.
	st, err := store.Open(filepath.Join(cfg.DataDir, DBFile), store.Options{Verify: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}()

	// The API port is taken first so a second posd fails fast and clearly.
	var ln net.Listener
	if sc != nil {
		ln = sc.ln.view() // the socket the unpaired phase listened on
	} else if ln, err = net.Listen("tcp", cfg.API.Addr); err != nil {
		return fmt.Errorf("daemon: local API: %w", err)
	}
	defer ln.Close()
	door, err := openDoor(cfg, log)
	if err != nil {
		return err
	}
	ln = door.listener(ln)
	counter, err := openCounter(cfg, opts.Demo)
	if err != nil {
		return err
	}
	defer counter.keys.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)

	if opts.Demo {
		b, err := broker.Start("127.0.0.1:0", log.With("component", "broker"))
		if err != nil {
			return err
		}
		defer b.Close()
		cfg.MQTT.Broker = b.URL()
		ledger, err := gateway.OpenLedger(filepath.Join(cfg.DataDir, LedgerFile), false)
		if err != nil {
			return err
		}
		defer ledger.Close()
		gw, err := gateway.New(gateway.Config{BrokerURL: b.URL(), Ledger: ledger, ClientID: "posgw-demo", Log: log.With("component", "posgw")})
		if err != nil {
			return err
		}
		g.Go(func() error { return gw.Run(ctx) })
	}
	// An early return from here on stops what already runs (the demo's posgw) before
	// the deferred closes above take the broker and the ledger from under it.
	defer func() { cancel(); _ = g.Wait() }()

	sh, err := newShredder(st, cfg.DataDir, log.With("component", "shred"))
	if err != nil {
		return err
	}
	codes, err := codeKey(cfg.DataDir)
	if err != nil {
		return err
	}
	session, err := st.NextSession()
	if err != nil {
		return err
	}
	scanStatus := new(scanner.Status)
	if sc != nil {
		scanStatus = sc.status // the scanner the unpaired phase started
	}
	rt := &instance{
		opts: opts, log: log, st: st, door: door, sh: sh, codes: codes, session: session,
		scanStatus: scanStatus, applies: make(chan applyRequest), ready: make(chan struct{}), counter: counter,
	}
	rt.metrics = newMetrics(rt)
	// The configuration in force: the file with the fleet's applied layer on top.
	if cfg, err = rt.openFleet(cfg); err != nil {
		return err
	}
	if err := rt.openFirmware(cfg); err != nil {
		return err
	}
	framing, err := scanner.ParseFraming(cfg.Scanner.Framing)
	if err != nil {
		return fmt.Errorf("daemon: scanner.framing: %w", err)
	}
	keymap, err := scanner.ParseKeymap(cfg.Scanner.Keymap)
	if err != nil {
		return fmt.Errorf("daemon: scanner.keymap: %w", err)
	}
	scans := make(chan scanner.Scan, 16)
	stdin := opts.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	g.Go(func() error { return rt.loop(ctx, cfg) })
	g.Go(func() error { return sh.run(ctx) })
	g.Go(func() error { return rt.agent.Run(ctx) })
	if rt.fw != nil {
		g.Go(func() error { return rt.fw.run(ctx) })
	}
	if sc != nil {
		// The scanner the unpaired phase started goes on (its settings are the
		// file's, which pairing does not change).
		scans = sc.scans
		g.Go(func() error {
			select {
			case err := <-sc.done:
				sc.done <- err
				return err
			case <-ctx.Done():
				return nil
			}
		})
	} else {
		g.Go(func() error {
			return scanner.Run(ctx, scanner.Config{
				Source:  cfg.Scanner.Source,
				Baud:    cfg.Scanner.Baud,
				MaxLine: cfg.Scanner.MaxLine,
				Dedup:   time.Duration(cfg.Scanner.Dedup),
				Framing: framing,
				Gap:     time.Duration(cfg.Scanner.Gap),
				AIM:     scanner.AIMMode(cfg.Scanner.AIM),
				Keymap:  keymap,
				EAN13:   cfg.Scanner.EAN13,
				Status:  rt.scanStatus,
			}, stdin, log.With("component", "scanner"), scans)
		})
	}
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case s := <-scans:
				if pairing.IsPairing(s.Text) {
					// A paired terminal ignores pairing QRs: a technician resets the
					// pairing first (docs/fleet.md). The QR carries a secret: never
					// logged in full, never handed to the sale engine.
					log.Warn("a pairing QR was scanned, but this terminal is already paired; ignored (reset the pairing first: docs/fleet.md)", "device", cfg.DeviceID, "qr", pairing.Redact(s.Text))
					continue
				}
				engine := rt.engine(ctx) // waits while a new configuration starts
				if engine == nil {
					return nil
				}
				start := time.Now()
				sale, applied, err := engine.Scan(ctx, s.Text)
				if err == nil {
					rt.metrics.commit.Observe(time.Since(start).Seconds())
				}
				if err != nil && ctx.Err() == nil {
					log.Error("scan could not be applied", "err", err)
				}
				if ctx.Err() == nil {
					door.refused.note(s.Text, sale, applied, err)
				}
			}
		}
	})

	select {
	case <-rt.ready:
	case <-ctx.Done():
		if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	g.Go(func() error { return counter.keys.Run(ctx) })
	// Served once the first sale path runs: no request is told to retry at start.
	g.Go(func() error { return serveFront(ctx, ln, &rt.front) })
	if opts.Ready != nil {
		opts.Ready(Info{
			APIURL: door.url(ln.Addr()), BrokerURL: cfg.MQTT.Broker, DataDir: cfg.DataDir,
			Printer: cfg.Printer.Target, Scanner: cfg.Scanner.Source, DeviceID: cfg.DeviceID,
			Token: door.adminToken, TLSFingerprint: door.fingerprint, PageURL: door.url(ln.Addr()) + "/",
		})
	}
	log.Info("posd running", "api", ln.Addr().String(), "device", cfg.DeviceID, "broker", cfg.MQTT.Broker, "session", session)
	if err := opts.Notify.Notify(sdnotify.Ready); err != nil {
		log.Warn("could not tell systemd posd is ready", "err", err)
	}
	g.Go(func() error {
		return watchdog(ctx, opts.Notify, opts.Watchdog, rt.engine, log.With("component", "watchdog"))
	})
	defer opts.Notify.Notify(sdnotify.Stopping) //nolint:errcheck // best effort at exit
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("posd stopped")
	return nil
}

// instance is what lives for the whole run of posd, around the generations.
type instance struct {
	opts       Options
	log        *slog.Logger
	st         *store.Store
	door       *door
	sh         *shredder
	codes      []byte
	session    uint64
	scanStatus *scanner.Status
	front      front
	fleet      fleetState
	agent      *fleet.Agent
	fw         *fwAgent // nil when firmware updates are off
	counter    *counter // the clerk's page: sessions, PINs, idempotency keys
	metrics    *metrics
	file       config.Config // the config file (and flags): what a push may not change
	applies    chan applyRequest
	ready      chan struct{} // closed once the first generation runs

	mu  stdsync.Mutex
	gen *generation   // guarded by mu; nil while a new configuration starts
	cur chan struct{} // guarded by mu; closed when gen is set again
}

// generation is the sale path built from one configuration.
type generation struct {
	cfg      config.Config
	engine   *payment.Engine
	link     *wsync.Link
	receipts *receipts
	srv      *api.Server
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // set before done is closed
}

// stop ends the generation and waits for it.
func (g *generation) stop() error {
	g.cancel()
	<-g.done
	if errors.Is(g.err, context.Canceled) {
		return nil
	}
	return g.err
}

// setGen makes gen the generation requests and scans go to (nil: none for now).
func (rt *instance) setGen(gen *generation) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.gen = gen
	if gen == nil {
		rt.front.cur.Store(nil)
		if rt.cur == nil {
			rt.cur = make(chan struct{})
		}
		return
	}
	rt.front.cur.Store(gen.srv)
	if rt.cur != nil {
		close(rt.cur)
		rt.cur = nil
	}
}

// engine returns the running generation's sale engine, waiting while a new
// configuration starts; nil when ctx ends first.
func (rt *instance) engine(ctx context.Context) *payment.Engine {
	for {
		rt.mu.Lock()
		gen, wait := rt.gen, rt.cur
		if gen == nil && wait == nil {
			wait = make(chan struct{})
			rt.cur = wait
		}
		rt.mu.Unlock()
		if gen != nil {
			return gen.engine
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		}
	}
}

// start builds and starts the sale path for cfg.
func (rt *instance) start(parent context.Context, cfg config.Config) (*generation, error) {
	opts, log, st, sh := rt.opts, rt.log, rt.st, rt.sh
	pay, err := paymentSettingsFrom(cfg, opts.Demo)
	if err != nil {
		return nil, err
	}
	password, err := mqttPassword(cfg)
	if err != nil {
		return nil, err
	}
	profile, ok := printer.LookupProfile(cfg.Printer.Profile)
	if !ok {
		return nil, fmt.Errorf("daemon: printer.profile %q is not one of %v", cfg.Printer.Profile, printer.ProfileNames())
	}
	prn, err := printer.OpenWith(cfg.Printer.Target, printer.Options{Log: log.With("component", "printer"), Profile: profile})
	if err != nil {
		return nil, err
	}
	lights := device.NewIndicators(device.IndicatorConfig{Green: cfg.Indicators.Green, Red: cfg.Indicators.Red, Buzzer: cfg.Indicators.Buzzer}, log.With("component", "indicators"))
	ctx, cancel := context.WithCancel(parent)
	fail := func(err error) (*generation, error) {
		cancel()
		lights.Close()
		prn.Close()
		return nil, err
	}
	receipts := newReceipts(prn, profile, cfg, log.With("component", "receipts"))
	receipts.failed = rt.metrics.printFails.Inc
	scanStatus := rt.scanStatus
	var engine *payment.Engine
	var events atomic.Pointer[api.Server] // the API, once made: the engine's pushes go to its event stream
	publish := func(s payment.Sale) {
		if srv := events.Load(); srv != nil {
			srv.PublishSale(s)
		}
	}
	link, err := wsync.NewLink(wsync.Config{
		BrokerURL:   cfg.MQTT.Broker,
		DeviceID:    cfg.DeviceID,
		Username:    cfg.MQTT.Username,
		Password:    password,
		Window:      cfg.MQTT.Window,
		Bundle:      cfg.MQTT.Bundle,
		ResendAfter: time.Duration(cfg.MQTT.ResendAfter),
		Heartbeat:   time.Duration(cfg.MQTT.Heartbeat),
		CAFile:      cfg.MQTT.CAFile,
		CertFile:    cfg.MQTT.CertFile,
		KeyFile:     cfg.MQTT.KeyFile,
		Health: func() wsync.Health {
			h := wsync.Health{Firmware: opts.Version, Scanner: "disconnected", Printer: printerKind(cfg.Printer.Target), ConfigVersion: rt.fleet.versionString()}
			if scanStatus.State().Connected {
				h.Scanner = "ok"
			}
			return h
		},
		Session: rt.session,
		Version: opts.Version,
		Outbox:  sh.outbox(outbox{st}),
		// Results that arrive together are applied in one store transaction.
		OnResults: func(ctx context.Context, rs []wsync.PaymentResult) error {
			prs := make([]payment.Result, len(rs))
			for i, r := range rs {
				prs[i] = payment.Result{Key: r.Key, Kind: r.Kind, Status: r.Status, Reason: r.Reason}
			}
			defer sh.Kick() // decided sales may free an epoch key
			return engine.HandleResults(ctx, prs)
		},
		Groups:        cfg.Fleet.Groups,
		Subscriptions: append(rt.fleetSubscriptions(ctx, cfg), rt.firmwareSubscriptions(ctx, cfg)...),
		OnConnect: func() {
			rt.metrics.onConnect()
			rt.agent.Connected()
		},
		Log: log.With("component", "sync"),
	})
	if err != nil {
		return fail(err)
	}
	online := newOnlineTracker(link.Online, time.Duration(cfg.Payment.OfflineAfter))
	online.changed = func(up bool) {
		if up {
			log.Info("cloud link back: sales authorize online again")
			go lights.Signal(ctx, device.PatternOff) //nolint:errcheck // logged by device
			return
		}
		log.Warn("cloud link down: the offline policy applies to new sales")
		go lights.Signal(ctx, device.PatternOffline) //nolint:errcheck // logged by device
	}
	engine, err = payment.New(payment.Config{
		Store:        st,
		EncodeOutbox: sh.encode(encodeOutbox(cfg.DeviceID)),
		CodeKey:      rt.codes,
		Kick:         link.Kick,
		Finished: func(sale payment.Sale) {
			receipts.enqueue(sale)
			rt.metrics.finished(sale)
			signalOutcome(ctx, lights, sale)
			publish(sale)
		},
		Presented:       func(sale payment.Sale) { receipts.enqueue(sale); publish(sale) },
		Online:          online.Online,
		AuthTimeout:     time.Duration(cfg.Payment.AuthTimeout),
		QueryTimeout:    pay.QueryTimeout,
		Offline:         pay.Offline,
		CodeReuseWindow: pay.CodeReuseWindow,
		MerchantCode:    pay.MerchantCode,
		PresentTimeout:  pay.PresentTimeout,
		PruneAfter:      pay.PruneAfter,
		ClockSynced:     payment.SystemClockSynced(),
		Identify:        rt.metrics.timeIdentify(pay.Identify),
		Log:             log.With("component", "payment"),
	})
	if err != nil {
		return fail(err)
	}
	status := func() any {
		depth, _, _ := st.OutboxStats()
		sales, _ := engine.Stats(ctx)
		s := map[string]any{
			"state":          StateSelling,
			"device_id":      cfg.DeviceID,
			"version":        opts.Version,
			"online":         link.Online(),
			"outbox_depth":   depth,
			"in_flight":      link.InFlight(),
			"scanner":        scanStatus.State(),
			"printer":        map[string]any{"target": cfg.Printer.Target, "profile": profile.Name, "queued": receipts.q.Pending()},
			"config_version": rt.fleet.version.Load(),
			"time":           time.Now().UTC(),
		}
		if len(cfg.Fleet.Groups) > 0 {
			s["groups"] = cfg.Fleet.Groups
		}
		if sales.Waiting != "" {
			s["waiting_sale"] = sales.Waiting
		}
		s["sales"] = sales
		if at, ok := oldestUnsynced(st); ok {
			s["oldest_unsynced_at"] = at.UTC()
		}
		rt.door.addStatus(s)
		rt.addFirmwareStatus(s)
		return s
	}
	srv := api.New(rt.gated(engine), status, log.With("component", "api"))
	if rt.fw != nil {
		srv.Firmware = rt.fw
	}
	srv.Merchant = cfg.Merchant.Name
	srv.Config = rt.configHistory()
	srv.Metrics = rt.metrics.handler()
	rt.door.configure(srv)
	if err := rt.counter.configure(srv, st, engine, cfg, opts.Demo); err != nil {
		return fail(err)
	}
	events.Store(srv)
	if !receipts.none { // without a printer, reprint answers 501
		srv.Reprint = func(id string) error {
			sale, err := engine.Get(id)
			if err != nil {
				return err
			}
			return receipts.reprint(sale)
		}
	}
	gen := &generation{cfg: cfg, engine: engine, link: link, receipts: receipts, srv: srv, cancel: cancel, done: make(chan struct{})}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error { return srv.Watch(gctx, eventTick) })
	g.Go(func() error { return link.Run(gctx) })
	g.Go(func() error { return online.run(gctx) })
	g.Go(func() error { return receipts.run(gctx) })
	go func() {
		gen.err = g.Wait()
		lights.Close()
		prn.Close()
		close(gen.done)
	}()
	return gen, nil
}

// outbox adapts the store to the link's Outbox.
type outbox struct{ st *store.Store }

func (o outbox) Pending(max int, skip func(uint64) bool) ([]wsync.Pending, error) {
	es, err := o.st.Peek(max, skip)
	if err != nil {
		return nil, err
	}
	out := make([]wsync.Pending, len(es))
	for i, e := range es {
		out[i] = wsync.Pending{Seq: e.Seq, Data: e.Data}
	}
	return out, nil
}

// signalOutcome shows a sale's outcome on the status lights; it never blocks the
// engine.
func signalOutcome(ctx context.Context, lights *device.Indicators, s payment.Sale) {
	var p device.Pattern
	switch s.Status {
	case payment.StatusApproved, payment.StatusStoredOffline:
		p = device.PatternApproved
	case payment.StatusDeclined, payment.StatusRefused, payment.StatusCancelled:
		p = device.PatternDeclined
	default:
		p = device.PatternError
	}
	go lights.Signal(ctx, p) //nolint:errcheck // a missing light is logged once by device
}

// Depth reports how many outbox entries wait, for the heartbeat.
func (o outbox) Depth() (int, error) {
	d, _, err := o.st.OutboxStats()
	return d, err
}

// printerKind is what a heartbeat says about the printer: the kind of its target
// (none, emulator, tcp, usb, serial, file), never its path or address
// (docs/protocol.md, Heartbeat).
func printerKind(target string) string {
	switch {
	case target == "" || target == "none":
		return "none"
	case strings.HasPrefix(target, "emulator:"):
		return "emulator"
	case strings.HasPrefix(target, "tcp:"):
		return "tcp"
	case strings.HasPrefix(target, "serial:"), strings.HasPrefix(target, "/dev/tty"):
		return "serial"
	case strings.HasPrefix(target, "/dev/"):
		return "usb"
	}
	return "file"
}
