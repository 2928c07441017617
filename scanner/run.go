package scanner

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/walletless/walletless/device"
)

// runReader reads codes from r (standard input) until end of input or ctx is done.
func (p *pipeline) runReader(ctx context.Context, r io.Reader) error {
	type chunk struct {
		b   []byte
		err error
	}
	ch := make(chan chunk)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			buf := make([]byte, 512)
			n, err := r.Read(buf)
			if n == 0 && err == nil {
				// A reader that returns nothing and no error must not make us spin.
				if !sleep(ctx, 10*time.Millisecond) {
					return
				}
				continue
			}
			select {
			case ch <- chunk{buf[:n], err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// A blocked Read on a pollable file (a pipe, a pty) is ended by a deadline; on a
	// plain terminal the goroutine ends at the next line or end of input.
	stop := context.AfterFunc(ctx, func() {
		if f, ok := r.(*os.File); ok {
			_ = f.SetReadDeadline(time.Now())
		}
	})
	defer stop()

	p.st.setConnected("", true, p.now())
	p.log.Info("scanner reading standard input")
	for {
		select {
		case <-ctx.Done():
			p.st.setConnected("", false, p.now())
			return nil
		case c := <-ch:
			if len(c.b) > 0 {
				if err := p.feed(ctx, c.b); err != nil {
					return nil
				}
			}
			if c.err == nil {
				continue
			}
			p.st.setConnected("", false, p.now())
			if err := p.flush(ctx); err != nil {
				return nil
			}
			<-readerDone
			if errors.Is(c.err, io.EOF) {
				p.log.Info("scanner: end of standard input; no more scans")
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			p.st.setError(c.err, p.now())
			p.log.Warn("scanner: reading standard input failed; no more scans", "err", c.err)
			return nil
		}
	}
}

// runSerial reads a serial scanner, reconnecting until ctx is done.
func (p *pipeline) runSerial(ctx context.Context, sel device.Selector) error {
	var learned device.Selector // USB identity of a path source, learned on connect
	return p.runDevice(ctx, func() (string, device.Port, error) { return p.connect(sel, &learned) })
}

// runDevice reads the port that connect opens, reconnecting with backoff after every
// error until ctx is done.
func (p *pipeline) runDevice(ctx context.Context, connect func() (string, device.Port, error)) error {
	var (
		backoff  = p.cfg.RetryMin
		logged   string // last retry error logged, to log each problem once
		quietNF  bool   // just disconnected: "not found" was said already
		attempts int
	)
	for {
		if ctx.Err() != nil {
			return nil
		}
		path, port, err := connect()
		if err != nil {
			attempts++
			p.st.setConnected("", false, p.now())
			p.st.setError(err, p.now())
			switch {
			case quietNF && errors.Is(err, device.ErrNotFound):
				p.log.Debug("scanner still absent", "err", err, "attempt", attempts)
			case err.Error() != logged:
				p.log.Warn("scanner not available; retrying", "source", p.cfg.Source, "err", err)
				logged = err.Error()
			default:
				p.log.Debug("scanner retry failed", "err", err, "attempt", attempts)
			}
			if !sleep(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, p.cfg.RetryMax)
			continue
		}
		attempts, logged, quietNF = 0, "", false
		connectedAt := p.now()
		p.st.setConnected(path, true, connectedAt)
		p.log.Info("scanner connected", "port", path, "source", p.cfg.Source)
		p.framer.Discard()
		err = p.readPort(ctx, port)
		port.Close()
		if ctx.Err() != nil {
			p.st.setConnected("", false, p.now())
			return nil
		}
		p.st.setConnected("", false, p.now())
		p.st.setError(err, p.now())
		p.log.Warn("scanner disconnected; reconnecting", "port", path, "err", err)
		quietNF = true
		if p.now().Sub(connectedAt) > p.cfg.RetryMax {
			backoff = p.cfg.RetryMin
		}
		// A short pause before the first retry: the device node of an unplugged
		// scanner can linger for a moment.
		if !sleep(ctx, jitter(backoff)) {
			return nil
		}
	}
}

// connect resolves the selector (or the identity learned from a path) and opens it.
func (p *pipeline) connect(sel device.Selector, learned *device.Selector) (string, device.Port, error) {
	var ports []device.PortInfo
	listed := false
	list := func() []device.PortInfo {
		if !listed {
			listed = true
			ps, err := p.cfg.ListPorts()
			if err != nil {
				p.log.Debug("listing serial ports failed", "err", err)
			}
			ports = ps
		}
		return ports
	}
	open := func(path string) (device.Port, error) {
		return device.OpenSerial(path, device.SerialConfig{Baud: p.cfg.Baud, ReadTimeout: p.cfg.Poll})
	}
	var (
		path string
		port device.Port
		err  error
	)
	if sel.IsUSB() {
		path, err = device.Resolve(sel, list())
		if err == nil {
			port, err = open(path)
		}
	} else {
		path, err = device.Resolve(sel, nil)
		if err == nil {
			port, err = open(path)
		}
		// The path is gone or dead: a USB scanner may be back under another name.
		if err != nil && learned.IsUSB() {
			if alt, err2 := device.Resolve(*learned, list()); err2 == nil && alt != path {
				if port2, err2 := open(alt); err2 == nil {
					p.log.Info("scanner found under a new name", "was", sel.Path, "now", alt, "usb", learned.String())
					path, port, err = alt, port2, nil
				}
			}
		}
	}
	if err != nil {
		return "", nil, err
	}
	if !sel.IsUSB() && !learned.IsUSB() {
		if id, ok := device.Identify(path, list()); ok {
			*learned = id
		}
	}
	return path, port, nil
}

// readPort reads port until an error or ctx is done. Closing the port when ctx ends
// is what unblocks a Read; a read timeout's (0, nil) is a tick for gap framing and
// idle checks, and the loop sleeps if a port ever returns (0, nil) early.
func (p *pipeline) readPort(ctx context.Context, port device.Port) error {
	stop := context.AfterFunc(ctx, func() { port.Close() })
	defer stop()
	buf := make([]byte, 256)
	for {
		start := time.Now()
		n, err := port.Read(buf)
		if n > 0 {
			if p.framer.Pending() > 0 && p.cfg.Framing == FramingGap && p.now().Sub(p.lastIn) >= p.cfg.Gap {
				if err := p.flush(ctx); err != nil {
					return err
				}
			}
			if err := p.feed(ctx, buf[:n]); err != nil {
				return err
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			continue
		}
		// Read timed out: (0, nil).
		if pend := p.framer.Pending(); pend > 0 {
			idle := p.now().Sub(p.lastIn)
			switch {
			case p.cfg.Framing == FramingGap && idle >= p.cfg.Gap:
				if err := p.flush(ctx); err != nil {
					return err
				}
			case p.cfg.Framing != FramingGap && p.cfg.PartialTimeout > 0 && idle >= p.cfg.PartialTimeout:
				p.framer.Discard()
				p.reject(ErrPartial, "bytes", pend)
			}
		}
		if el := time.Since(start); el < p.cfg.Poll/2 {
			if !sleep(ctx, p.cfg.Poll-el) {
				return ctx.Err()
			}
		}
	}
}

// sleep waits d or until ctx is done; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d by ±20 %.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
