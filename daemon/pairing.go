package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	stdsync "sync"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/fleet"
	"github.com/walletless/walletless/internal/sdnotify"
	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/pairing"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/printer"
	"github.com/walletless/walletless/printer/escpos"
	"github.com/walletless/walletless/scanner"
	"github.com/walletless/walletless/web"
)

// GET /v1/status's "state": StateUnpaired while the terminal waits for its pairing
// QR, StateSelling once it has a device id.
const (
	StateUnpaired = "unpaired"
	StateSelling  = "selling"
)

// enrollTimeout bounds one enrollment request (below the service's WatchdogSec=30s:
// the unpaired loop keeps pinging while it waits anyway).
const enrollTimeout = 20 * time.Second

// unpairedMessage is what the API answers every request but GET /v1/status with
// while the terminal is unpaired.
const unpairedMessage = "this terminal is not paired yet (state unpaired): scan the pairing QR from your fleet manager with the counter scanner"

// sharedScanner is what the unpaired phase hands the sale path once the terminal is
// paired: the scanner it reads, and the API's listening socket (same port, no
// connection refused while posd switches).
type sharedScanner struct {
	scans  chan scanner.Scan
	status *scanner.Status
	done   chan error // the scanner's result, once it stops
	ln     *sharedListener
}

// sharedListener accepts on one socket for a sequence of servers: each takes a view,
// and closing a view leaves the socket open for the next one.
type sharedListener struct {
	ln    net.Listener
	conns chan net.Conn
	err   error // set before conns is closed
}

func newSharedListener(ln net.Listener) *sharedListener {
	s := &sharedListener{ln: ln, conns: make(chan net.Conn)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				s.err = err
				close(s.conns)
				return
			}
			s.conns <- c
		}
	}()
	return s
}

// view is a listener on the shared socket until it is closed.
func (s *sharedListener) view() net.Listener {
	return &listenerView{s: s, done: make(chan struct{})}
}

type listenerView struct {
	s    *sharedListener
	once stdsync.Once
	done chan struct{}
}

func (v *listenerView) Accept() (net.Conn, error) {
	select {
	case c, ok := <-v.s.conns:
		if !ok {
			return nil, v.s.err
		}
		return c, nil
	case <-v.done:
		return nil, net.ErrClosed
	}
}

func (v *listenerView) Close() error   { v.once.Do(func() { close(v.done) }); return nil }
func (v *listenerView) Addr() net.Addr { return v.s.ln.Addr() }

// withPairing loads the saved pairing (DATA/pairing.json) over a configuration
// without a device id. paired is false when there is none.
func withPairing(cfg config.Config) (config.Config, bool, error) {
	st, ok, err := pairing.Load(cfg.DataDir)
	if err != nil || !ok {
		return cfg, false, err
	}
	return pairedConfig(cfg, st), true, nil
}

// pairedConfig is the packaged configuration with a pairing on top: the device id,
// the broker over mutual TLS with the saved key and certificate, the groups and the
// shop's merchant code.
func pairedConfig(cfg config.Config, st pairing.State) config.Config {
	cfg.DeviceID = st.DeviceID
	cfg.MQTT.Broker = st.Broker
	cfg.MQTT.CAFile, cfg.MQTT.CertFile, cfg.MQTT.KeyFile = st.CAFile, st.CertFile, st.KeyFile
	// The broker knows the terminal by its certificate (use_identity_as_username).
	cfg.MQTT.Username, cfg.MQTT.Password, cfg.MQTT.PasswordFile = "", "", ""
	if len(st.Groups) > 0 {
		cfg.Fleet.Groups = st.Groups
	}
	if st.MerchantEMVQR != "" {
		cfg.Merchant.EMVQR = st.MerchantEMVQR
	}
	return cfg
}

// runUnpaired runs a terminal that has no device id and no saved pairing: it says so
// on the printer, the clerk page and GET /v1/status, waits for a pairing QR on the
// scanner, enrolls, saves the pairing and then runs the sale path in the same
// process with the scanner it already reads.
func runUnpaired(ctx context.Context, opts Options) error {
	cfg := opts.Config
	base := opts.Log
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	log := base.With("component", "pairing")
	if err := secretfile.PrivateDir(cfg.DataDir); err != nil {
		return fmt.Errorf("daemon: data dir: %w", err)
	}
	keys, err := fleet.ParseKeys(cfg.Fleet.TrustedKeys)
	if err != nil {
		return fmt.Errorf("daemon: fleet.trusted_keys: %w", err)
	}
	framing, err := scanner.ParseFraming(cfg.Scanner.Framing)
	if err != nil {
		return fmt.Errorf("daemon: scanner.framing: %w", err)
	}
	keymap, err := scanner.ParseKeymap(cfg.Scanner.Keymap)
	if err != nil {
		return fmt.Errorf("daemon: scanner.keymap: %w", err)
	}
	profile, ok := printer.LookupProfile(cfg.Printer.Profile)
	if !ok {
		return fmt.Errorf("daemon: printer.profile %q is not one of %v", cfg.Printer.Profile, printer.ProfileNames())
	}
	page, err := web.Handler(web.Config{Language: cfg.PageLanguage(), Currencies: cfg.PageCurrencies(), Merchant: cfg.Merchant.Name})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.API.Addr)
	if err != nil {
		return fmt.Errorf("daemon: local API: %w", err)
	}
	defer ln.Close()
	door, err := openDoor(cfg, base)
	if err != nil {
		return err
	}

	stdin := opts.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	shared := newSharedListener(ln)
	sc := &sharedScanner{scans: make(chan scanner.Scan, 16), status: new(scanner.Status), done: make(chan error, 1), ln: shared}
	// The scanner lives for the whole run: Run hands it to the sale path.
	scanCtx, stopScanner := context.WithCancel(ctx)
	defer func() { stopScanner(); <-sc.done }()
	go func() {
		sc.done <- scanner.Run(scanCtx, scanner.Config{
			Source: cfg.Scanner.Source, Baud: cfg.Scanner.Baud, MaxLine: cfg.Scanner.MaxLine,
			Dedup: time.Duration(cfg.Scanner.Dedup), Framing: framing, Gap: time.Duration(cfg.Scanner.Gap),
			AIM: scanner.AIMMode(cfg.Scanner.AIM), Keymap: keymap, EAN13: cfg.Scanner.EAN13, Status: sc.status,
		}, stdin, base.With("component", "scanner"), sc.scans)
	}()

	u := &unpaired{cfg: cfg, keys: keys, log: log, profile: profile, hardware: hardwareID(), version: opts.Version, scanStatus: sc.status}
	prn, err := printer.OpenWith(cfg.Printer.Target, printer.Options{Log: base.With("component", "printer"), Profile: profile})
	if err != nil {
		return err
	}
	u.prn = prn
	srvCtx, stopServer := context.WithCancel(ctx)
	srv := api.HTTPServer(srvCtx, u.handler(page))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(door.listener(shared.view())) }()
	stopAll := func() {
		stopServer()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		<-serveErr
		u.prints.Wait()
		prn.Close()
	}

	u.printAsync(ctx, "unpaired", u.unpairedSlip())
	log.Info("posd running", "state", StateUnpaired, "api", ln.Addr().String())
	log.Warn("this terminal is not paired: scan the pairing QR from your fleet manager", "trusted_keys", len(keys), "hardware", u.hardware, "api", ln.Addr().String())
	if opts.Ready != nil {
		opts.Ready(Info{APIURL: door.url(ln.Addr()), DataDir: cfg.DataDir, Printer: cfg.Printer.Target, Scanner: cfg.Scanner.Source,
			Token: door.adminToken, TLSFingerprint: door.fingerprint, PageURL: door.url(ln.Addr()) + "/"})
	}
	if err := opts.Notify.Notify(sdnotify.Ready); err != nil {
		log.Warn("could not tell systemd posd is ready", "err", err)
	}

	paired, err := u.loop(ctx, opts, sc)
	stopAll()
	if err != nil || paired == nil {
		_ = opts.Notify.Notify(sdnotify.Stopping) // best effort at exit
		if err == nil || errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	opts.Config = *paired
	return runPaired(ctx, opts, sc)
}

// unpaired is the state of a terminal waiting for its pairing QR.
type unpaired struct {
	cfg        config.Config
	keys       []minisign.PublicKey
	log        *slog.Logger
	prn        printer.Printer
	profile    printer.Profile
	hardware   string
	version    string
	scanStatus *scanner.Status

	prints stdsync.WaitGroup // slips being printed beside the loop

	mu        stdsync.Mutex
	lastError string    // guarded by mu: the last refused pairing attempt, for the page and status
	lastAt    time.Time // guarded by mu
	enrolling bool      // guarded by mu
}

// loop waits for a good pairing QR; it returns the paired configuration, or nil when
// ctx ends. One attempt runs at a time, beside the loop, so the loop keeps pinging
// the watchdog while it waits for the enrollment server.
func (u *unpaired) loop(ctx context.Context, opts Options, sc *sharedScanner) (*config.Config, error) {
	var tick <-chan time.Time
	if opts.Notify != nil && opts.Watchdog > 0 {
		t := time.NewTicker(opts.Watchdog / 2)
		defer t.Stop()
		tick = t.C
		_ = opts.Notify.Notify(sdnotify.Watchdog)
	}
	type result struct {
		cfg config.Config
		err error
	}
	results := make(chan result, 1)
	busy := false
	for {
		select {
		case <-ctx.Done():
			if busy {
				<-results
			}
			return nil, nil
		case err := <-sc.done:
			sc.done <- err // Run's deferred wait reads it again
			if err != nil && ctx.Err() == nil {
				return nil, err
			}
			return nil, nil
		case <-tick:
			_ = opts.Notify.Notify(sdnotify.Watchdog)
		case s := <-sc.scans:
			if !pairing.IsPairing(s.Text) {
				u.refuse("a code was scanned, but this terminal is not paired yet: scan the pairing QR from your fleet manager first", false)
				continue
			}
			if busy {
				u.log.Warn("a pairing QR was scanned while a pairing attempt runs; ignored", "qr", pairing.Redact(s.Text))
				continue
			}
			busy = true
			u.setEnrolling(true)
			go func(text string) {
				c, err := u.attempt(ctx, text)
				results <- result{c, err}
			}(s.Text)
		case r := <-results:
			busy = false
			u.setEnrolling(false)
			if r.err == nil {
				return &r.cfg, nil
			}
			if ctx.Err() != nil {
				return nil, nil
			}
			u.refuse("pairing refused: "+strings.TrimPrefix(r.err.Error(), "pairing: "), true)
		}
	}
}

// attempt checks a scanned pairing QR and enrolls with it. Any error leaves the
// terminal as it was: unpaired, with nothing written.
func (u *unpaired) attempt(ctx context.Context, text string) (config.Config, error) {
	log := u.log.With("qr", pairing.Redact(text))
	q, err := pairing.Parse(text)
	if err != nil {
		return config.Config{}, err
	}
	p := q.Payload
	log = log.With("device", p.DeviceID, "nonce", p.Nonce)
	now := time.Now()
	if err := q.Verify(u.keys, now, payment.SystemClockSynced()(now)); err != nil {
		return config.Config{}, err
	}
	used, err := pairing.Used(u.cfg.DataDir, p.Nonce)
	if err != nil {
		return config.Config{}, err
	}
	if used {
		return config.Config{}, fmt.Errorf("%w: used on this terminal before (nonce %s)", pairing.ErrReused, p.Nonce)
	}
	// The result must make a configuration posd starts with before anything is
	// written (the merchant code, the broker URL).
	probe := pairedConfig(u.cfg, pairing.State{DeviceID: p.DeviceID, Broker: p.Broker, Groups: p.Groups, MerchantEMVQR: p.MerchantEMVQR,
		CAFile: "ca.crt", CertFile: "device.crt", KeyFile: "device.key"})
	if err := CheckConfig(probe, false); err != nil {
		return config.Config{}, fmt.Errorf("pairing: the QR's settings do not make a valid configuration: %w", err)
	}
	log.Info("pairing QR verified; enrolling", "enroll_url", p.EnrollURL, "broker", p.Broker)
	e, err := pairing.Enroll(ctx, p, enrollTimeout)
	if err != nil {
		return config.Config{}, err
	}
	st, err := pairing.Save(u.cfg.DataDir, p, e, time.Now())
	if err != nil {
		return config.Config{}, err
	}
	cfg := pairedConfig(u.cfg, st)
	if err := CheckConfig(cfg, false); err != nil {
		// Not expected after the probe; the pairing stays on disk for the next start.
		return config.Config{}, err
	}
	log.Info("paired", "cert_sha256", st.CertFingerprint, "cert_not_after", st.CertNotAfter, "groups", st.Groups)
	u.print(ctx, "paired", u.pairedSlip(st))
	return cfg, nil
}

// refuse records a refused scan for the page and status, logs it and, for a refused
// pairing QR, prints a slip.
func (u *unpaired) refuse(msg string, slip bool) {
	u.mu.Lock()
	u.lastError, u.lastAt = msg, time.Now().UTC()
	u.mu.Unlock()
	u.log.Warn(msg)
	if slip {
		u.printAsync(context.Background(), "pairing-refused", u.slip("Pairing refused", append(wrap(msg, u.profile.Columns), "", "Nothing was changed: the terminal is still unpaired.", "Ask your fleet manager for a new pairing QR.")))
	}
}

func (u *unpaired) setEnrolling(on bool) {
	u.mu.Lock()
	u.enrolling = on
	u.mu.Unlock()
}

// needs lists what the terminal needs before it can pair.
func (u *unpaired) needs() []string {
	var n []string
	if len(u.keys) == 0 {
		n = append(n, "a fleet key: this terminal has no fleet.trusted_keys, so it cannot check a pairing QR (install the package built with FLEET_PUB=fleet.pub, or add the key to /etc/walletless/posd.json)")
	}
	n = append(n, "the pairing QR from your fleet manager (posfleet provision), scanned with the counter scanner")
	n = append(n, "a network connection to the enrollment server and the broker")
	return n
}

// status is GET /v1/status while unpaired.
func (u *unpaired) status() map[string]any {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := map[string]any{"needs": u.needs(), "trusted_keys": len(u.keys), "enrolling": u.enrolling}
	if u.hardware != "" {
		p["hardware"] = u.hardware
	}
	if u.lastError != "" {
		p["last_error"] = u.lastError
		p["last_error_at"] = u.lastAt
	}
	return map[string]any{
		"state":   StateUnpaired,
		"version": u.version,
		"online":  false,
		"scanner": u.scanStatus.State(),
		"printer": map[string]any{"target": u.cfg.Printer.Target, "profile": u.profile.Name},
		"pairing": p,
		"time":    time.Now().UTC(),
	}
}

// handler serves the clerk page (its /config.json says "unpaired"), GET /v1/status,
// and a 503 naming the state for every other API request.
func (u *unpaired) handler(page http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/config.json" && r.Method == http.MethodGet:
			st := u.status()
			conf := map[string]any{
				"language": u.cfg.PageLanguage(), "currencies": u.cfg.PageCurrencies(), "merchant": u.cfg.Merchant.Name, "demo": false,
				"unpaired": st["pairing"],
			}
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			writeJSON(w, http.StatusOK, conf)
		case r.URL.Path == "/v1/status" && r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, u.status())
		case r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/"):
			w.Header().Set("Retry-After", "30")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": unpairedMessage, "state": StateUnpaired})
		default:
			page.ServeHTTP(w, r)
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// unpairedSlip is printed at start while the terminal is unpaired.
func (u *unpaired) unpairedSlip() []byte {
	lines := []string{"Not paired yet - scan the pairing QR", "from your fleet manager.", ""}
	lines = append(lines, "This terminal needs:")
	for _, n := range u.needs() {
		lines = append(lines, wrap("- "+n, u.profile.Columns)...)
	}
	lines = append(lines, "")
	if u.hardware != "" {
		lines = append(lines, "Hardware: "+u.hardware)
	}
	lines = append(lines, "posd "+u.version)
	return u.slip("Walletless: not paired", lines)
}

// pairedSlip is printed once the terminal is paired: no secret on it.
func (u *unpaired) pairedSlip(st pairing.State) []byte {
	lines := []string{"Device: " + st.DeviceID}
	lines = append(lines, wrap("Broker: "+st.Broker, u.profile.Columns)...)
	if len(st.Groups) > 0 {
		lines = append(lines, wrap("Groups: "+strings.Join(st.Groups, ", "), u.profile.Columns)...)
	}
	lines = append(lines, "Certificate SHA-256:")
	lines = append(lines, wrap(st.CertFingerprint, u.profile.Columns)...)
	lines = append(lines, "Valid until: "+st.CertNotAfter.Format("2006-01-02 15:04 UTC"))
	lines = append(lines, "Paired at: "+st.PairedAt.Format("2006-01-02 15:04 UTC"))
	if st.MerchantEMVQR != "" {
		lines = append(lines, "Merchant QR: set")
	}
	lines = append(lines, "", "The terminal now sells.")
	return u.slip("Walletless: paired", lines)
}

// slip lays out a plain text slip (ASCII; the contents are ids, URLs and hex).
func (u *unpaired) slip(title string, lines []string) []byte {
	b := escpos.New().Init().Align(escpos.Center).Bold(true).Text([]byte(ascii(title))).LF().Bold(false).Align(escpos.Left)
	for _, l := range lines {
		b.Text([]byte(ascii(l))).LF()
	}
	b.Cut(false, 4)
	out, err := b.Bytes()
	if err != nil {
		u.log.Error("slip could not be laid out", "err", err)
		return nil
	}
	return out
}

// printAsync prints a slip beside the caller: a slow or missing printer delays
// neither the start nor the loop.
func (u *unpaired) printAsync(ctx context.Context, name string, data []byte) {
	u.prints.Add(1)
	go func() {
		defer u.prints.Done()
		u.print(ctx, name, data)
	}()
}

// print prints a slip; a printer failure is logged and does not stop pairing.
func (u *unpaired) print(ctx context.Context, name string, data []byte) {
	if data == nil || u.cfg.Printer.Target == "none" {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	job := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	if err := u.prn.Print(pctx, job, data); err != nil {
		u.log.Error("slip not printed", "slip", name, "err", err)
	}
}

// ascii replaces what a plain code page may not print.
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// wrap breaks s into lines of at most width characters, at spaces where it can.
func wrap(s string, width int) []string {
	if width < 16 {
		width = 32
	}
	var out []string
	for len(s) > width {
		i := strings.LastIndex(s[:width], " ")
		if i <= 0 {
			i = width
		}
		out = append(out, s[:i])
		s = strings.TrimLeft(s[i:], " ")
	}
	return append(out, s)
}

// hardwareID names the box on the slip and the page: the Raspberry Pi's serial number
// when there is one, else a short hash of the machine id (never the id itself).
func hardwareID() string {
	for _, f := range []string{"/sys/firmware/devicetree/base/serial-number", "/proc/device-tree/serial-number"} {
		if b, err := os.ReadFile(f); err == nil {
			if s := strings.Trim(strings.TrimSpace(string(b)), "\x00"); s != "" {
				return "serial " + ascii(s)
			}
		}
	}
	if f, err := os.Open("/etc/machine-id"); err == nil {
		defer f.Close()
		b, _ := io.ReadAll(io.LimitReader(f, 128))
		if id := strings.TrimSpace(string(b)); id != "" {
			h := sha256.Sum256([]byte("walletless hardware id " + id))
			return "machine " + hex.EncodeToString(h[:6])
		}
	}
	return ""
}
