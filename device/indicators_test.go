package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// recPin is periph's gpiotest.Pin with a record of every level it was set to, so a
// test can check a whole light or beep pattern, not only the last level.
type recPin struct {
	gpiotest.Pin
	mu   sync.Mutex
	hist []gpio.Level // guarded by mu
	fail bool         // set before the pin is used: Out fails like a broken line
}

func (p *recPin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("line broken")
	}
	p.hist = append(p.hist, l)
	return p.Pin.Out(l)
}

func (p *recPin) levels() []gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gpio.Level(nil), p.hist...)
}

// rises counts Low→High transitions.
func (p *recPin) rises() int {
	n := 0
	prev := gpio.Low
	for _, l := range p.levels() {
		if l == gpio.High && prev == gpio.Low {
			n++
		}
		prev = l
	}
	return n
}

func (p *recPin) last() gpio.Level {
	h := p.levels()
	if len(h) == 0 {
		return gpio.Low
	}
	return h[len(h)-1]
}

type board struct {
	green, red, buzz *recPin
}

func newBoard() *board {
	return &board{newRecPin("GPIO17", 17), newRecPin("GPIO27", 27), newRecPin("GPIO22", 22)}
}

func newRecPin(name string, num int) *recPin {
	return &recPin{Pin: gpiotest.Pin{N: name, Num: num, Fn: "Out"}}
}

func (b *board) lookup(name string) (gpio.PinOut, error) {
	for _, p := range []*recPin{b.green, b.red, b.buzz} {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: no line %q", ErrNoGPIO, name)
}

func logTo(sb *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(sb, nil))
}

func TestIndicatorPatterns(t *testing.T) {
	tests := []struct {
		p                        Pattern
		greenOn, redOn, buzzOn   int
		activeLowBuzzerIdleLevel gpio.Level
	}{
		{PatternApproved, 1, 0, 1, gpio.High},
		{PatternDeclined, 0, 1, 3, gpio.High},
		{PatternError, 0, 4, 1, gpio.High},
		{PatternOffline, 3, 3, 0, gpio.High},
		{PatternOff, 0, 0, 0, gpio.High},
	}
	for _, tt := range tests {
		t.Run(string(tt.p), func(t *testing.T) {
			b := newBoard()
			var logs strings.Builder
			in := NewIndicators(IndicatorConfig{Green: "GPIO17", Red: "GPIO27", Buzzer: "!GPIO22", Lookup: b.lookup}, logTo(&logs))
			in.setScale(0.01)
			if err := in.Signal(context.Background(), tt.p); err != nil {
				t.Fatal(err)
			}
			if g, r := b.green.rises(), b.red.rises(); g != tt.greenOn || r != tt.redOn {
				t.Errorf("green on %d times, red %d; want %d, %d (green %v, red %v)", g, r, tt.greenOn, tt.redOn, b.green.levels(), b.red.levels())
			}
			// The buzzer is active low: a beep is a High→Low edge.
			beeps := 0
			prev := gpio.High
			for _, l := range b.buzz.levels() {
				if l == gpio.Low && prev == gpio.High {
					beeps++
				}
				prev = l
			}
			if beeps != tt.buzzOn {
				t.Errorf("%d beeps, want %d (%v)", beeps, tt.buzzOn, b.buzz.levels())
			}
			if b.green.last() != gpio.Low || b.red.last() != gpio.Low || b.buzz.last() != tt.activeLowBuzzerIdleLevel {
				t.Errorf("outputs not off at the end: %v %v %v", b.green.last(), b.red.last(), b.buzz.last())
			}
			if n := strings.Count(logs.String(), "\n"); n != 1 {
				t.Errorf("%d log lines, want 1:\n%s", n, logs.String())
			}
		})
	}
}

func TestIndicatorsPreemptAndCancel(t *testing.T) {
	b := newBoard()
	in := NewIndicators(IndicatorConfig{Green: "GPIO17", Red: "GPIO27", Lookup: b.lookup}, nil)
	in.setScale(100) // a pattern that would take minutes
	done := make(chan error, 1)
	go func() { done <- in.Signal(context.Background(), PatternOffline) }()
	for i := 0; i < 2000 && b.red.rises() == 0; i++ {
		time.Sleep(time.Millisecond)
	}
	in.setScale(0.001)
	// A newer signal interrupts the long one.
	if err := in.Signal(context.Background(), PatternApproved); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the interrupted Signal did not return")
	}
	if b.green.last() != gpio.Low || b.red.last() != gpio.Low {
		t.Error("outputs left on")
	}

	// Cancelling the context stops a pattern and turns outputs off.
	in.setScale(100)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- in.Signal(ctx, PatternDeclined) }()
	for i := 0; i < 2000 && b.red.last() == gpio.Low; i++ {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Signal ignored its context")
	}
	if b.red.last() != gpio.Low {
		t.Error("red left on after cancel")
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if in.Active() {
		t.Error("Active after Close")
	}
}

func TestIndicatorsDegrade(t *testing.T) {
	var logs strings.Builder
	in := NewIndicators(IndicatorConfig{Green: "GPIO5", Red: "GPIO6"}, logTo(&logs))
	// Whatever this machine has, GPIO5/GPIO6 are unlikely to be openable by a test;
	// if they are not, Signal must be a silent no-op.
	if !in.Active() {
		in.setScale(0.001)
		if err := in.Signal(context.Background(), PatternApproved); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "silent") {
			t.Errorf("want one log line saying signals are silent:\n%s", logs.String())
		}
	}
	in.Close()

	logs.Reset()
	none := NewIndicators(IndicatorConfig{}, logTo(&logs))
	if none.Active() || strings.Count(logs.String(), "\n") != 1 {
		t.Errorf("no pins: active %v, log %q", none.Active(), logs.String())
	}
	if err := none.Signal(context.Background(), "party"); !errors.Is(err, ErrUnknownPattern) {
		t.Errorf("unknown pattern: %v", err)
	}

	// A line that fails is left out, with one log line naming it.
	logs.Reset()
	b := newBoard()
	b.red.fail = true
	part := NewIndicators(IndicatorConfig{Green: "GPIO17", Red: "GPIO27", Buzzer: "GPIO99", Lookup: b.lookup}, logTo(&logs))
	part.setScale(0.001)
	if !part.Active() || strings.Count(logs.String(), "\n") != 1 || !strings.Contains(logs.String(), "GPIO99") {
		t.Errorf("partial: active %v, log %q", part.Active(), logs.String())
	}
	part.Signal(context.Background(), PatternDeclined)
	if b.green.rises() != 0 {
		t.Error("green lit for declined")
	}
}
