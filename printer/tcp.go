package printer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// tcpPrinter is a network printer on a raw TCP port (JetDirect, 9100). It connects
// per job, so a printer that reboots or changes cable is picked up again.
type tcpPrinter struct {
	addr   string
	status bool
	opt    Options
	log    *slog.Logger
	sem    chan struct{} // one job at a time
	closed chan struct{}
	gsr    atomic.Bool // the printer answers GS r (until it shows it does not)
}

func newTCPPrinter(hostport string, status bool, opt Options, log *slog.Logger) (Printer, error) {
	if hostport == "" {
		return nil, fmt.Errorf("%w: tcp needs HOST[:PORT]", ErrSpec)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, "9100")
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	p := &tcpPrinter{addr: hostport, status: status, opt: opt, log: log,
		sem: make(chan struct{}, 1), closed: make(chan struct{})}
	p.gsr.Store(true)
	return p, nil
}

func (p *tcpPrinter) acquire(ctx context.Context) error {
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-p.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("printer: %w", ctx.Err())
	}
}

func (p *tcpPrinter) dial(ctx context.Context) (*tcpConn, func(), error) {
	d := net.Dialer{Timeout: p.opt.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("printer: connect %s: %w", p.addr, err)
	}
	// A cancelled context or Close interrupts any blocked read or write.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	done := make(chan struct{})
	go func() {
		select {
		case <-p.closed:
			c.SetDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	return &tcpConn{c: c, ctx: ctx, closed: p.closed}, func() { stop(); close(done); c.Close() }, nil
}

func (p *tcpPrinter) Print(ctx context.Context, name string, data []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-p.sem }()
	c, done, err := p.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	if p.status {
		st, err := queryStatus(c, p.opt.StatusTimeout)
		if err != nil {
			return p.fail(ctx, err)
		}
		if !st.Ready() {
			return &StatusError{Status: st, When: "before printing"}
		}
	}
	if err := c.writeTimeout(data, p.opt.WriteTimeout); err != nil {
		return p.fail(ctx, fmt.Errorf("printer: write to %s: %w", p.addr, err))
	}
	if p.status {
		// Confirm the receipt came out: a paper end in the middle of it shows here.
		st, err := confirmPrinted(c, &p.gsr, p.opt.WriteTimeout, p.opt.StatusTimeout)
		if err != nil {
			return p.fail(ctx, err)
		}
		if !st.Ready() {
			return &StatusError{Status: st, When: "after printing"}
		}
	}
	p.log.Debug("printed", "job", name, "bytes", len(data), "addr", p.addr)
	return nil
}

// fail turns deadline errors into ErrTimeout (or the context's error).
func (p *tcpPrinter) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("printer: %w", ctx.Err())
	}
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

func (p *tcpPrinter) Status(ctx context.Context) (Status, error) {
	if err := p.acquire(ctx); err != nil {
		return Status{}, err
	}
	defer func() { <-p.sem }()
	c, done, err := p.dial(ctx)
	if err != nil {
		return Status{}, err
	}
	defer done()
	st, err := queryStatus(c, p.opt.StatusTimeout)
	if err != nil {
		return Status{}, p.fail(ctx, err)
	}
	return st, nil
}

func (p *tcpPrinter) Close() error {
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return nil
}

// tcpConn is one job's connection. Deadlines set here are checked against the
// context and Close afterwards: their AfterFunc may have fired before the deadline was
// set and its past deadline would be overwritten.
type tcpConn struct {
	c      net.Conn
	ctx    context.Context
	closed chan struct{}
}

func (t *tcpConn) interrupted() error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-t.closed:
		return ErrClosed
	default:
	}
	return nil
}

func (t *tcpConn) writeTimeout(p []byte, d time.Duration) error {
	t.c.SetWriteDeadline(time.Now().Add(d))
	if err := t.interrupted(); err != nil {
		return err
	}
	return writeFull(t.c, p)
}

func (t *tcpConn) Write(p []byte) (int, error) {
	if err := t.writeTimeout(p, 5*time.Second); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *tcpConn) readByte(deadline time.Time) (byte, error) {
	t.c.SetReadDeadline(deadline)
	if err := t.interrupted(); err != nil {
		return 0, err
	}
	var b [1]byte
	_, err := t.c.Read(b[:])
	return b[0], err
}
