package scanner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/walletless/walletless/device"
	"github.com/walletless/walletless/paycode"
)

// Scan is one code read by a scanner.
type Scan struct {
	Text      string    // the decoded code; log it only through paycode.Mask
	Symbology string    // from the AIM prefix when present ("qr", "code128", "ean13", ...), else ""
	At        time.Time // when the code's last byte arrived
}

// Defaults for Config's zero fields.
const (
	DefaultBaud           = 9600
	DefaultMaxLine        = 512
	DefaultGap            = 50 * time.Millisecond
	DefaultPartialTimeout = time.Second
	DefaultRetryMin       = 250 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
	DefaultPoll           = 100 * time.Millisecond
)

// SourceStdin is the Config.Source that reads codes from standard input.
const SourceStdin = "stdin"

// Config says where scans come from and how bytes are cut into codes. Zero fields
// take the defaults above.
type Config struct {
	// Source is "stdin", a serial device path (/dev/ttyACM0, /dev/serial/by-id/...),
	// "usb:VID:PID[:SERIAL]" (hex), which is looked up again on every reconnect, or
	// "input:PATH" / "input:usb:VID:PID" for a keyboard-wedge scanner read through
	// Linux evdev, "camera:/dev/videoN[@WxH]" for a V4L2 camera, or
	// "images:DIR|FILE,..." for image files decoded once each.
	Source string
	// Baud is the serial bit rate (default 9600). USB CDC-ACM scanners ignore it.
	Baud int
	// MaxLine is the longest accepted code in bytes (default 512). Longer lines are
	// dropped with a warning; no more than MaxLine bytes are ever buffered.
	MaxLine int
	// Dedup makes reads of the same code within this window one scan; the window
	// restarts at every read, so a code held under a presentation scanner counts once.
	// 0 turns it off.
	Dedup time.Duration
	// Framing cuts the byte stream into codes (default FramingAuto: CR, LF or CRLF).
	Framing Framing
	// Gap is the inter-byte timeout that ends a code with FramingGap (default 50 ms).
	Gap time.Duration
	// PartialTimeout drops bytes of an unterminated line that sat idle this long on a
	// serial port (default 1 s; negative disables). Standard input never times out.
	PartialTimeout time.Duration
	// AIM says whether an AIM symbology prefix is parsed (default AIMAuto).
	AIM AIMMode

	// Status, if not nil, receives the scanner's state for the local API.
	Status *Status

	// RetryMin and RetryMax bound the reconnect backoff (defaults 250 ms and 5 s).
	RetryMin, RetryMax time.Duration
	// Poll is the serial read timeout, the granularity of cancellation and gap checks
	// (default 100 ms).
	Poll time.Duration
	// EAN13 also reads EAN-13/UPC-A codes from camera and image sources (off by
	// default: retail barcodes are not payment codes).
	EAN13 bool
	// Keymap is the keyboard layout a keyboard-wedge scanner ("input:" source)
	// emulates (default KeymapUS).
	Keymap Keymap

	// ListPorts enumerates serial ports; nil means device.ListPorts. Tests replace it.
	ListPorts func() ([]device.PortInfo, error)
	// ListInputs and OpenInput find and open input devices; nil means
	// device.ListInputs and device.OpenInput (which grabs the device).
	ListInputs func() ([]device.InputInfo, error)
	OpenInput  func(path string) (io.ReadCloser, error)
}

// withDefaults returns c with zero fields filled and checks it.
func (c Config) withDefaults() (Config, error) {
	if c.Baud <= 0 {
		c.Baud = DefaultBaud
	}
	if c.MaxLine <= 0 {
		c.MaxLine = DefaultMaxLine
	}
	f, err := ParseFraming(string(c.Framing))
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.Framing = f
	switch c.AIM {
	case "":
		c.AIM = AIMAuto
	case AIMAuto, AIMOff:
	default:
		return c, fmt.Errorf("%w: unknown AIM mode %q (want auto or off)", ErrConfig, c.AIM)
	}
	if c.Gap <= 0 {
		c.Gap = DefaultGap
	}
	if c.PartialTimeout == 0 {
		c.PartialTimeout = DefaultPartialTimeout
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.Framing == FramingGap && c.Poll > c.Gap/2 {
		c.Poll = max(c.Gap/2, time.Millisecond)
	}
	if c.Dedup < 0 {
		c.Dedup = 0
	}
	if c.ListPorts == nil {
		c.ListPorts = device.ListPorts
	}
	if c.ListInputs == nil {
		c.ListInputs = device.ListInputs
	}
	if c.OpenInput == nil {
		c.OpenInput = func(path string) (io.ReadCloser, error) { return device.OpenInput(path) }
	}
	k, err := ParseKeymap(string(c.Keymap))
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.Keymap = k
	if c.Status == nil {
		c.Status = new(Status)
	}
	if strings.TrimSpace(c.Source) == "" {
		return c, fmt.Errorf("%w: empty source", ErrConfig)
	}
	return c, nil
}

// Run reads scans from cfg.Source and sends them to out until ctx is done, then
// returns nil. It never closes out.
//
// With Source "stdin" it reads stdin, one code per line, and returns nil at end of
// input (after logging it once). With a serial port it reconnects after every unplug
// or error with backoff, finding a USB scanner again by VID:PID even under a new
// device name, and it returns only when ctx is done or cfg is invalid.
func Run(ctx context.Context, cfg Config, stdin io.Reader, log *slog.Logger, out chan<- Scan) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := newPipeline(cfg, log, out)
	p.st.update(func(s *State) { s.Source = cfg.Source })
	if cfg.Source == SourceStdin || cfg.Source == "-" {
		if stdin == nil {
			return fmt.Errorf("%w: source stdin without a reader", ErrConfig)
		}
		return p.runReader(ctx, stdin)
	}
	if strings.HasPrefix(cfg.Source, CameraPrefix) || strings.HasPrefix(cfg.Source, ImagesPrefix) {
		return runFrameSource(ctx, cfg, log, out)
	}
	if strings.HasPrefix(cfg.Source, InputPrefix) {
		return p.runInput(ctx, cfg.Source)
	}
	sel, err := device.ParseSelector(cfg.Source)
	if err != nil {
		return fmt.Errorf("scanner: %w", err)
	}
	return p.runSerial(ctx, sel)
}

// pipeline turns bytes into Scans. One goroutine owns it.
type pipeline struct {
	cfg     Config
	log     *slog.Logger
	st      *Status
	out     chan<- Scan
	framer  *Framer
	dedup   dedup
	warn    limiter
	now     func() time.Time
	pending []Scan
	lastIn  time.Time // when the last byte arrived
}

func newPipeline(cfg Config, log *slog.Logger, out chan<- Scan) *pipeline {
	p := &pipeline{
		cfg: cfg, log: log, st: cfg.Status, out: out,
		framer: NewFramer(cfg.Framing, cfg.MaxLine),
		dedup:  dedup{window: cfg.Dedup},
		warn:   limiter{every: 10 * time.Second},
		now:    time.Now,
	}
	p.framer.Oversize = func(n int) { p.reject(ErrOversize, "max_line", p.cfg.MaxLine) }
	return p
}

// feed frames b and delivers the resulting scans. It returns ctx's error if ctx ends
// while a scan waits to be delivered.
func (p *pipeline) feed(ctx context.Context, b []byte) error {
	p.lastIn = p.now()
	p.framer.Feed(b, p.frame)
	return p.deliver(ctx)
}

// flush ends the unfinished frame (gap framing, end of input) and delivers.
func (p *pipeline) flush(ctx context.Context) error {
	p.framer.Flush(p.frame)
	return p.deliver(ctx)
}

func (p *pipeline) deliver(ctx context.Context) error {
	for i, s := range p.pending {
		select {
		case p.out <- s:
		case <-ctx.Done():
			p.pending = p.pending[:0]
			return ctx.Err()
		}
		p.pending[i] = Scan{}
	}
	p.pending = p.pending[:0]
	return nil
}

// frame turns one frame into a pending Scan, or rejects it.
func (p *pipeline) frame(fr []byte) {
	s, err := parseFrame(fr, p.cfg.AIM)
	if err != nil {
		p.reject(err)
		return
	}
	if s.Text == "" {
		return
	}
	s.At = p.lastIn
	if p.dedup.seen(s.Text, s.At) {
		p.st.update(func(st *State) { st.Duplicates++ })
		p.log.Debug("duplicate read suppressed", "code", paycode.Mask(s.Text))
		return
	}
	p.st.update(func(st *State) { st.Scans++; st.LastScan = s.At })
	p.log.Debug("scan", "code", paycode.Mask(s.Text), "symbology", s.Symbology)
	p.pending = append(p.pending, s)
}

// reject counts a dropped frame and warns, at most once per limiter period.
func (p *pipeline) reject(err error, args ...any) {
	now := p.now()
	p.st.update(func(st *State) { st.Dropped++ })
	p.st.setError(err, now)
	if ok, suppressed := p.warn.allow(now); ok {
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		p.log.Warn(err.Error(), args...)
	}
}

// parseFrame strips an AIM prefix and surrounding blanks and checks the bytes. It
// returns a Scan with empty Text for a blank frame.
func parseFrame(fr []byte, aim AIMMode) (Scan, error) {
	var s Scan
	if aim != AIMOff {
		if name, n := aimSymbology(fr); n > 0 {
			s.Symbology, fr = name, fr[n:]
		}
	}
	fr = bytes.TrimFunc(fr, func(r rune) bool { return r <= ' ' || r == 0x7f })
	if len(fr) == 0 {
		return s, nil
	}
	if !utf8.Valid(fr) {
		return Scan{}, ErrNotUTF8
	}
	for _, b := range fr {
		if (b < ' ' && b != 0x1d) || b == 0x7f {
			return Scan{}, ErrControl
		}
	}
	s.Text = string(fr)
	return s, nil
}

// dedup suppresses a code read again within window of its previous read.
type dedup struct {
	window time.Duration
	last   string
	at     time.Time
}

func (d *dedup) seen(code string, at time.Time) bool {
	if d.window <= 0 {
		return false
	}
	dup := code == d.last && at.Sub(d.at) < d.window && !at.Before(d.at)
	d.last, d.at = code, at
	return dup
}

// limiter allows one event per period and counts the ones it held back.
type limiter struct {
	every      time.Duration
	last       time.Time
	suppressed int
}

func (l *limiter) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
