package printer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"
)

// serialPrinter is a printer on a serial port (RS-232, USB CDC/FTDI adapters). The port
// stays open between jobs and is reopened after an error.
type serialPrinter struct {
	path   string
	baud   int
	status bool
	opt    Options
	log    *slog.Logger

	sem    chan struct{} // one job at a time
	mu     sync.Mutex    // guards port and closed
	port   serial.Port   // guarded by mu
	closed bool          // guarded by mu
	wg     sync.WaitGroup
	gsr    atomic.Bool // the printer answers GS r (until it shows it does not)
}

func newSerialPrinter(path string, baud int, status bool, opt Options, log *slog.Logger) *serialPrinter {
	p := &serialPrinter{path: path, baud: baud, status: status, opt: opt, log: log, sem: make(chan struct{}, 1)}
	p.gsr.Store(true)
	return p
}

func (p *serialPrinter) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("printer: %w", ctx.Err())
	}
}

// open returns the open port, opening it if needed.
func (p *serialPrinter) open() (serial.Port, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.port != nil {
		return p.port, nil
	}
	port, err := serial.Open(p.path, &serial.Mode{BaudRate: p.baud})
	if err != nil {
		return nil, fmt.Errorf("printer: open %s: %w", p.path, err)
	}
	p.port = port
	p.log.Info("serial printer opened", "port", p.path, "baud", p.baud)
	return port, nil
}

// drop closes the port after an error; the next job reopens it.
func (p *serialPrinter) drop(port serial.Port) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.port == port && port != nil {
		port.ResetOutputBuffer()
		port.Close()
		p.port = nil
	}
}

func (p *serialPrinter) Print(ctx context.Context, name string, data []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-p.sem }()
	port, err := p.open()
	if err != nil {
		return err
	}
	if p.status {
		st, err := p.query(port, p.opt.StatusTimeout)
		if err != nil {
			p.drop(port)
			return err
		}
		if !st.Ready() {
			return &StatusError{Status: st, When: "before printing"}
		}
	}
	// A blocked serial write cannot be cancelled; on timeout the port is closed and
	// reset, which is what unblocks it on real UARTs.
	p.wg.Add(1)
	err = writeTimeout(ctx, &countingWriter{w: port, wg: &p.wg}, func() { p.drop(port) }, data, p.opt.WriteTimeout)
	if err != nil {
		p.drop(port)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("printer: %w", err)
		}
		return fmt.Errorf("printer: write to %s: %w", p.path, err)
	}
	if p.status {
		st, err := confirmPrinted(serialConn{port}, &p.gsr, p.opt.WriteTimeout, p.opt.StatusTimeout)
		if err != nil {
			p.drop(port)
			return err
		}
		if !st.Ready() {
			return &StatusError{Status: st, When: "after printing"}
		}
	}
	p.log.Debug("printed", "job", name, "bytes", len(data), "port", p.path)
	return nil
}

func (p *serialPrinter) query(port serial.Port, timeout time.Duration) (Status, error) {
	port.ResetInputBuffer()
	st, err := queryStatus(serialConn{port}, timeout)
	if err != nil {
		return Status{}, err
	}
	return st, nil
}

func (p *serialPrinter) Status(ctx context.Context) (Status, error) {
	if err := p.acquire(ctx); err != nil {
		return Status{}, err
	}
	defer func() { <-p.sem }()
	port, err := p.open()
	if err != nil {
		return Status{}, err
	}
	st, err := p.query(port, p.opt.StatusTimeout)
	if err != nil {
		p.drop(port)
	}
	return st, err
}

// Close closes the port and waits for a write in flight to return.
func (p *serialPrinter) Close() error {
	p.mu.Lock()
	p.closed = true
	port := p.port
	p.port = nil
	p.mu.Unlock()
	var err error
	if port != nil {
		port.ResetOutputBuffer()
		err = port.Close()
	}
	// A write blocked in the kernel (flow control held by a jammed printer) may
	// outlive the close; do not hang the caller on it.
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
		p.log.Warn("serial write still blocked after close", "port", p.path)
	}
	return err
}

// closeWait bounds how long Close waits for a blocked serial write.
var closeWait = 2 * time.Second

// countingWriter marks the end of a write goroutine for Close.
type countingWriter struct {
	w  interface{ Write([]byte) (int, error) }
	wg *sync.WaitGroup
}

func (c *countingWriter) Write(p []byte) (int, error) {
	defer c.wg.Done()
	return c.w.Write(p)
}

type serialConn struct{ port serial.Port }

func (s serialConn) Write(p []byte) (int, error) { return s.port.Write(p) }

func (s serialConn) readByte(deadline time.Time) (byte, error) {
	d := time.Until(deadline)
	if d <= 0 {
		return 0, errNoAnswer
	}
	if err := s.port.SetReadTimeout(d); err != nil {
		return 0, err
	}
	var b [1]byte
	n, err := s.port.Read(b[:])
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errNoAnswer
	}
	return b[0], nil
}
