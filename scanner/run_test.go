package scanner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/walletless/walletless/device"
)

// guard is the failure timeout for anything that should happen "soon".
const guard = 10 * time.Second

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// running is a Run in a goroutine.
type running struct {
	t      *testing.T
	out    chan Scan
	cancel context.CancelFunc
	done   chan error
	status *Status
	log    *syncBuffer
	ended  bool  // Run's result was taken from done
	err    error // Run's result, when ended
}

func start(t *testing.T, cfg Config, stdin io.Reader) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log, buf := testLogger()
	if cfg.Status == nil {
		cfg.Status = new(Status)
	}
	r := &running{t: t, out: make(chan Scan, 16), cancel: cancel, done: make(chan error, 1), status: cfg.Status, log: buf}
	go func() { r.done <- Run(ctx, cfg, stdin, log, r.out) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run and fails if it does not return nil promptly.
func (r *running) stop() {
	r.t.Helper()
	r.cancel()
	r.wait()
	if r.err != nil {
		r.t.Errorf("Run returned %v, want nil", r.err)
	}
}

// wait waits for Run to return.
func (r *running) wait() {
	r.t.Helper()
	if r.ended {
		return
	}
	select {
	case r.err = <-r.done:
		r.ended = true
	case <-time.After(guard):
		r.t.Fatal("Run did not return")
	}
}

func (r *running) next() Scan {
	r.t.Helper()
	select {
	case s := <-r.out:
		return s
	case <-time.After(guard):
		r.t.Fatal("no scan arrived")
	}
	return Scan{}
}

// waitFor polls cond until it holds.
func (r *running) waitFor(what string, cond func(State) bool) State {
	r.t.Helper()
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		if st := r.status.State(); cond(st) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("timed out waiting for %s; state %+v; log:\n%s", what, r.status.State(), r.log.String())
	return State{}
}

func (r *running) noMore() {
	r.t.Helper()
	select {
	case s := <-r.out:
		r.t.Fatalf("unexpected scan %q", s.Text)
	default:
	}
}

func TestRunStdin(t *testing.T) {
	in := "286512345678901234\r\n]Q1134567890123456789\n\n]C0ABC\r\xff\xfe\r12\x0734\r" +
		"ABC\rlast-without-newline"
	r := start(t, Config{Source: "stdin", Dedup: time.Minute}, strings.NewReader(in))
	want := []Scan{
		{Text: "286512345678901234"},
		{Text: "134567890123456789", Symbology: "qr"},
		{Text: "ABC", Symbology: "code128"},
		// the second ABC is a duplicate; garbage lines are dropped
		{Text: "last-without-newline"},
	}
	for _, w := range want {
		s := r.next()
		if s.Text != w.Text || s.Symbology != w.Symbology || s.At.IsZero() {
			t.Errorf("scan = %q/%q at %v, want %q/%q", s.Text, s.Symbology, s.At, w.Text, w.Symbology)
		}
	}
	r.wait() // at end of input, without cancel
	if r.err != nil {
		t.Fatalf("Run at EOF = %v, want nil", r.err)
	}
	r.noMore()
	st := r.status.State()
	if st.Scans != 4 || st.Duplicates != 1 || st.Dropped != 2 || st.Connected {
		t.Errorf("state = %+v", st)
	}
	logs := r.log.String()
	if strings.Count(logs, "end of standard input") != 1 {
		t.Errorf("end of input not logged exactly once:\n%s", logs)
	}
	for _, code := range []string{"286512345678901234", "134567890123456789"} {
		if strings.Contains(logs, code) || strings.Contains(st.LastError, code) {
			t.Errorf("a full code reached the log or state:\n%s", logs)
		}
	}
}

func TestRunStdinCancel(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	defer pr.Close()
	r := start(t, Config{Source: "stdin"}, pr)
	if _, err := pw.Write([]byte("12345678\n")); err != nil {
		t.Fatal(err)
	}
	if s := r.next(); s.Text != "12345678" {
		t.Fatalf("scan %q", s.Text)
	}
	r.stop() // must not hang on the blocked pipe read
}

func TestRunBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Source: "stdin", Framing: "semicolon"},
		{Source: "stdin", AIM: "maybe"},
		{Source: "usb:zz:1"},
	} {
		err := Run(context.Background(), cfg, strings.NewReader(""), nil, make(chan Scan))
		if err == nil || !strings.HasPrefix(err.Error(), "scanner: ") {
			t.Errorf("Run(%+v) = %v, want a scanner: error", cfg, err)
		}
	}
}

// fakePTY is a pseudo terminal standing in for a USB scanner.
type fakePTY struct {
	master *os.File
	tty    *os.File
}

func newPTY(t *testing.T) *fakePTY {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo terminals: %v", err)
	}
	p := &fakePTY{master: m, tty: s}
	t.Cleanup(func() { p.unplug() })
	return p
}

func (p *fakePTY) name() string { return p.tty.Name() }

func (p *fakePTY) send(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		t.Fatalf("writing to pty: %v", err)
	}
}

// unplug closes both ends, as the kernel does when a USB device goes away.
func (p *fakePTY) unplug() {
	p.master.Close()
	p.tty.Close()
}

// lister is a fake port enumerator whose answer the test changes.
type lister struct {
	mu    sync.Mutex
	ports []device.PortInfo
}

func (l *lister) set(ports ...device.PortInfo) {
	l.mu.Lock()
	l.ports = ports
	l.mu.Unlock()
}

func (l *lister) list() ([]device.PortInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]device.PortInfo(nil), l.ports...), nil
}

func usbPort(name string) device.PortInfo {
	return device.PortInfo{Name: name, IsUSB: true, VID: "05E0", PID: "1200", Serial: "S1"}
}

func fastRetry(cfg Config) Config {
	cfg.RetryMin, cfg.RetryMax, cfg.Poll = 5*time.Millisecond, 40*time.Millisecond, 10*time.Millisecond
	return cfg
}

func TestRunSerialFraming(t *testing.T) {
	p := newPTY(t)
	r := start(t, fastRetry(Config{Source: p.name(), MaxLine: 32, ListPorts: (&lister{}).list}), nil)
	r.waitFor("connected", func(s State) bool { return s.Connected })
	// split frames, every suffix, AIM prefixes, garbage and an oversize line
	chunks := []string{
		"2865123456", "78901234\r", "\n",
		"]Q1abc\n", "]C0", "XYZ-1\r\n",
		"\x00\x01\x02\x03\r", "12\x01\x0234\r",
		"\xc3\x28\xa0\xa1\r",
		strings.Repeat("7", 100) + "\r\n",
		"]E04901234567894\r",
	}
	for _, c := range chunks {
		p.send(t, c)
	}
	want := []Scan{
		{Text: "286512345678901234"}, {Text: "abc", Symbology: "qr"},
		{Text: "XYZ-1", Symbology: "code128"}, {Text: "4901234567894", Symbology: "ean13"},
	}
	for _, w := range want {
		if s := r.next(); s.Text != w.Text || s.Symbology != w.Symbology {
			t.Errorf("scan %q/%q, want %q/%q", s.Text, s.Symbology, w.Text, w.Symbology)
		}
	}
	st := r.waitFor("drops counted", func(s State) bool { return s.Dropped >= 3 })
	if st.Dropped != 3 || st.Scans != 4 || st.Port != p.name() {
		t.Errorf("state %+v", st)
	}
	if strings.Contains(r.log.String(), "286512345678901234") {
		t.Error("full code in log")
	}
	r.noMore()
}

func TestRunSerialPartialAndGap(t *testing.T) {
	p := newPTY(t)
	r := start(t, fastRetry(Config{Source: p.name(), PartialTimeout: 30 * time.Millisecond, ListPorts: (&lister{}).list}), nil)
	r.waitFor("connected", func(s State) bool { return s.Connected })
	p.send(t, "noise-without-suffix")
	r.waitFor("partial line dropped", func(s State) bool { return s.Dropped == 1 })
	if st := r.status.State(); !strings.Contains(st.LastError, "unterminated") {
		t.Errorf("last error %q", st.LastError)
	}
	p.send(t, "123456\r")
	if s := r.next(); s.Text != "123456" {
		t.Errorf("scan %q after a dropped partial line", s.Text)
	}
	r.stop()

	p2 := newPTY(t)
	r2 := start(t, fastRetry(Config{Source: p2.name(), Framing: FramingGap, Gap: 20 * time.Millisecond, ListPorts: (&lister{}).list}), nil)
	r2.waitFor("connected", func(s State) bool { return s.Connected })
	p2.send(t, "]Q1no-suffix-code")
	if s := r2.next(); s.Text != "no-suffix-code" || s.Symbology != "qr" {
		t.Errorf("gap framing scan %q/%q", s.Text, s.Symbology)
	}
}

// TestRunSerialReplugUSB unplugs the scanner and plugs it back under another name;
// the USB selector finds it again.
func TestRunSerialReplugUSB(t *testing.T) {
	l := &lister{}
	p1 := newPTY(t)
	l.set(usbPort(p1.name()))
	r := start(t, fastRetry(Config{Source: "usb:05e0:1200:S1", ListPorts: l.list}), nil)
	r.waitFor("connected", func(s State) bool { return s.Connected && s.Port == p1.name() })
	p1.send(t, "first\r")
	if s := r.next(); s.Text != "first" {
		t.Fatalf("scan %q", s.Text)
	}

	l.set()
	p1.unplug()
	r.waitFor("disconnected", func(s State) bool { return !s.Connected })
	p2 := newPTY(t)
	if p2.name() == p1.name() {
		t.Logf("the kernel reused %s", p2.name())
	}
	l.set(device.PortInfo{Name: "/dev/ttyS0"}, usbPort(p2.name()))
	r.waitFor("reconnected", func(s State) bool { return s.Connected && s.Port == p2.name() })
	p2.send(t, "second\r\n")
	if s := r.next(); s.Text != "second" {
		t.Fatalf("scan %q after replug", s.Text)
	}
	logs := r.log.String()
	if n := strings.Count(logs, "scanner disconnected"); n != 1 {
		t.Errorf("unplug logged %d times:\n%s", n, logs)
	}
	if n := strings.Count(logs, "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one unplug, want 1:\n%s", n, logs)
	}
}

// TestRunSerialReplugPath configures a path; after the replug the scanner is found
// again by the USB identity learned when it was first opened.
func TestRunSerialReplugPath(t *testing.T) {
	l := &lister{}
	p1 := newPTY(t)
	p2 := newPTY(t) // opened first so that the kernel cannot reuse p1's name
	l.set(usbPort(p1.name()))
	r := start(t, fastRetry(Config{Source: p1.name(), ListPorts: l.list}), nil)
	r.waitFor("connected", func(s State) bool { return s.Connected && s.Port == p1.name() })
	p1.send(t, "one\r")
	if s := r.next(); s.Text != "one" {
		t.Fatalf("scan %q", s.Text)
	}
	l.set(usbPort(p2.name()))
	p1.unplug()
	r.waitFor("found under the new name", func(s State) bool { return s.Connected && s.Port == p2.name() })
	p2.send(t, "two\r")
	if s := r.next(); s.Text != "two" {
		t.Fatalf("scan %q after replug", s.Text)
	}
	if !strings.Contains(r.log.String(), "found under a new name") {
		t.Errorf("log:\n%s", r.log.String())
	}
}

// TestRunSerialAbsent keeps retrying a scanner that is not there, logs that once, and
// stops promptly when cancelled.
func TestRunSerialAbsent(t *testing.T) {
	r := start(t, fastRetry(Config{Source: "usb:1234:5678", ListPorts: (&lister{}).list}), nil)
	st := r.waitFor("an error", func(s State) bool { return s.LastError != "" })
	if !strings.Contains(st.LastError, "not found") || st.Connected {
		t.Errorf("state %+v", st)
	}
	// let it retry a few times
	deadline := time.Now().Add(guard)
	for strings.Count(r.log.String(), "scanner retry failed") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.stop()
	if n := strings.Count(r.log.String(), "scanner not available"); n != 1 {
		t.Errorf("absence logged %d times:\n%s", n, r.log.String())
	}
}

// TestRunCancelWhileReading cancels while a port is open and idle.
func TestRunCancelWhileReading(t *testing.T) {
	p := newPTY(t)
	cfg := fastRetry(Config{Source: p.name(), ListPorts: (&lister{}).list})
	cfg.Poll = time.Hour // a Read that would block "forever": only closing the port ends it
	r := start(t, cfg, nil)
	r.waitFor("connected", func(s State) bool { return s.Connected })
	r.stop()
}

// zeroPort returns (0, nil) at once, like a misbehaving driver; readPort must not spin.
type zeroPort struct {
	mu     sync.Mutex
	reads  int
	cancel context.CancelFunc
}

func (z *zeroPort) Read(p []byte) (int, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.reads++
	if z.reads == 20 {
		z.cancel()
	}
	return 0, nil
}
func (z *zeroPort) Write(p []byte) (int, error) { return len(p), nil }
func (z *zeroPort) Close() error                { return nil }

func TestReadPortNoSpin(t *testing.T) {
	cfg, err := Config{Source: "x", Poll: 10 * time.Millisecond}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	z := &zeroPort{cancel: cancel}
	p := newPipeline(cfg, slog.New(slog.DiscardHandler), make(chan Scan))
	start := time.Now()
	err = p.readPort(ctx, z)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("readPort = %v", err)
	}
	// 19 early (0, nil) reads each wait about one poll period; a spinning loop
	// would finish in microseconds. (A lower bound only: sleeping never ends early.)
	if el := time.Since(start); el < 19*cfg.Poll/2 {
		t.Fatalf("readPort spun: %d reads in %v", z.reads, el)
	}
}
