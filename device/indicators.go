package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
)

// Pattern is a named light-and-sound sequence of the indicators.
type Pattern string

// Patterns.
const (
	PatternApproved Pattern = "approved" // green on, one short beep
	PatternDeclined Pattern = "declined" // red on, three short beeps
	PatternError    Pattern = "error"    // red blinking fast, one long beep
	PatternOffline  Pattern = "offline"  // green and red blinking slowly together, no sound
	PatternOff      Pattern = "off"      // everything off at once
)

// ErrUnknownPattern is returned by Signal for a pattern it does not know.
var ErrUnknownPattern = errors.New("device: unknown indicator pattern")

// step is one state of the outputs, held for d.
type step struct {
	green, red, buzz bool
	d                time.Duration
}

const ms = time.Millisecond

// patterns are the sequences. Every one ends with everything off.
var patterns = map[Pattern][]step{
	PatternApproved: {
		{green: true, buzz: true, d: 120 * ms},
		{green: true, d: 1000 * ms},
	},
	PatternDeclined: {
		{red: true, buzz: true, d: 100 * ms}, {red: true, d: 100 * ms},
		{red: true, buzz: true, d: 100 * ms}, {red: true, d: 100 * ms},
		{red: true, buzz: true, d: 100 * ms}, {red: true, d: 900 * ms},
	},
	PatternError: {
		{red: true, buzz: true, d: 150 * ms}, {buzz: true, d: 150 * ms},
		{red: true, buzz: true, d: 150 * ms}, {buzz: true, d: 150 * ms},
		{red: true, d: 150 * ms}, {d: 150 * ms},
		{red: true, d: 150 * ms},
	},
	PatternOffline: {
		{green: true, red: true, d: 300 * ms}, {d: 300 * ms},
		{green: true, red: true, d: 300 * ms}, {d: 300 * ms},
		{green: true, red: true, d: 300 * ms},
	},
	PatternOff: {},
}

// Patterns lists the known patterns.
func Patterns() []Pattern {
	return []Pattern{PatternApproved, PatternDeclined, PatternError, PatternOffline, PatternOff}
}

// IndicatorConfig names the GPIO lines of the status indicators. A name is a line name
// as the kernel or periph knows it ("GPIO17" on a Raspberry Pi), or "gpiochipN:OFFSET".
// A leading "!" marks an active-low line (many buzzer modules). An empty name means the
// output is not fitted.
type IndicatorConfig struct {
	Green  string
	Red    string
	Buzzer string
	// Lookup opens a line by name; nil means the system's GPIO (periph's registry,
	// then the Linux GPIO character devices). Tests pass fake pins.
	Lookup func(name string) (gpio.PinOut, error)
}

// Indicators drives the green LED, red LED and buzzer. Its methods are safe for
// concurrent use; a new Signal interrupts the one playing.
type Indicators struct {
	log *slog.Logger

	mu     sync.Mutex
	scale  float64            // duration multiplier, 1 outside tests; guarded by mu
	pins   [3]outPin          // green, red, buzzer; guarded by mu
	gen    uint64             // current Signal's generation; guarded by mu
	cancel context.CancelFunc // stops the current Signal; guarded by mu
}

// outPin is one output; pin is nil when absent.
type outPin struct {
	name      string
	pin       gpio.PinOut
	activeLow bool
}

func (o outPin) set(on bool) error {
	if o.pin == nil {
		return nil
	}
	lvl := gpio.Level(on != o.activeLow)
	return o.pin.Out(lvl)
}

// NewIndicators opens the configured lines and turns them off. Lines that cannot be
// opened are left out; if none can be, every Signal is a no-op. Either way it logs one
// line saying what it drives. It never fails: indicators are a convenience.
func NewIndicators(cfg IndicatorConfig, log *slog.Logger) *Indicators {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = systemLookup
	}
	in := &Indicators{log: log, scale: 1}
	var have, problems []string
	for i, name := range []string{cfg.Green, cfg.Red, cfg.Buzzer} {
		role := [...]string{"green", "red", "buzzer"}[i]
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		activeLow := strings.HasPrefix(name, "!")
		name = strings.TrimPrefix(name, "!")
		p, err := lookup(name)
		if err == nil && p == nil {
			err = fmt.Errorf("%w: no line %q", ErrNoGPIO, name)
		}
		if err == nil {
			o := outPin{name: name, pin: p, activeLow: activeLow}
			err = o.set(false)
			if err == nil {
				in.pins[i] = o
				have = append(have, role+"="+name)
				continue
			}
		}
		problems = append(problems, role+" "+name+": "+err.Error())
	}
	switch {
	case len(have) == 0 && len(problems) == 0:
		log.Info("indicators: none configured; signals are silent")
	case len(have) == 0:
		log.Warn("indicators: no GPIO line could be opened; signals are silent", "problems", strings.Join(problems, "; "))
	case len(problems) > 0:
		log.Warn("indicators: some lines missing", "using", strings.Join(have, ","), "problems", strings.Join(problems, "; "))
	default:
		log.Info("indicators ready", "using", strings.Join(have, ","))
	}
	return in
}

// Active reports whether at least one output is driven.
func (in *Indicators) Active() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range in.pins {
		if p.pin != nil {
			return true
		}
	}
	return false
}

// Signal plays pattern and returns when it has finished, when ctx is done, or when a
// newer Signal took over; all outputs are off afterwards unless a newer Signal is
// playing. It returns ErrUnknownPattern for an unknown pattern and nil otherwise:
// a failing LED must not stop a sale. Run it in its own goroutine to not wait.
func (in *Indicators) Signal(ctx context.Context, p Pattern) error {
	steps, ok := patterns[p]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPattern, p)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in.mu.Lock()
	if in.cancel != nil {
		in.cancel()
	}
	in.gen++
	gen, scale := in.gen, in.scale
	in.cancel = cancel
	in.mu.Unlock()

	for _, s := range steps {
		if !in.apply(gen, s) {
			return nil
		}
		t := time.NewTimer(time.Duration(float64(s.d) * scale))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
	}
	in.apply(gen, step{})
	in.mu.Lock()
	if in.gen == gen {
		in.cancel = nil
	}
	in.mu.Unlock()
	return nil
}

// apply sets the outputs to s if gen is still the current Signal.
func (in *Indicators) apply(gen uint64, s step) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gen != gen {
		return false
	}
	for i, on := range []bool{s.green, s.red, s.buzz} {
		if err := in.pins[i].set(on); err != nil {
			in.log.Debug("indicator output failed", "line", in.pins[i].name, "err", err)
		}
	}
	return true
}

// Close interrupts any Signal and turns every output off.
func (in *Indicators) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel != nil {
		in.cancel()
		in.cancel = nil
	}
	in.gen++
	var errs []error
	for _, p := range in.pins {
		if err := p.set(false); err != nil {
			errs = append(errs, fmt.Errorf("device: turning %s off: %w", p.name, err))
		}
		if c, ok := p.pin.(interface{ Close() error }); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("device: closing %s: %w", p.name, err))
			}
		}
	}
	in.pins = [3]outPin{}
	return errors.Join(errs...)
}

// systemLookup finds a line in periph's registry (filled when periph host drivers
// are loaded) and then among the Linux GPIO character devices.
func systemLookup(name string) (gpio.PinOut, error) {
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	return openGPIOLine(name)
}

// setScale speeds patterns up (tests).
func (in *Indicators) setScale(f float64) {
	in.mu.Lock()
	in.scale = f
	in.mu.Unlock()
}
