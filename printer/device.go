package printer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// devicePrinter writes to a printer class character device (/dev/usb/lp0): opened per
// job, so unplugging and plugging the printer back needs nothing from us.
type devicePrinter struct {
	path   string
	status bool
	opt    Options
	log    *slog.Logger
	sem    chan struct{}
}

func newDevicePrinter(path string, status bool, opt Options, log *slog.Logger) *devicePrinter {
	return &devicePrinter{path: path, status: status, opt: opt, log: log, sem: make(chan struct{}, 1)}
}

func (p *devicePrinter) Print(ctx context.Context, name string, data []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("printer: %w", ctx.Err())
	}
	defer func() { <-p.sem }()
	f, err := os.OpenFile(p.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("printer: open %s: %w", p.path, err)
	}
	defer f.Close()
	if p.status {
		if st, ok := lpStatus(f); ok && !st.Ready() {
			return &StatusError{Status: st, When: "before printing"}
		}
	}
	if err := writeFileTimeout(ctx, f, data, p.opt.WriteTimeout); err != nil {
		return fmt.Errorf("printer: write to %s: %w", p.path, err)
	}
	if p.status {
		if st, ok := lpStatus(f); ok && !st.Ready() {
			return &StatusError{Status: st, When: "after printing"}
		}
	}
	p.log.Debug("printed", "job", name, "bytes", len(data), "device", p.path)
	return nil
}

// Status reads the device's port status (LPGETSTATUS); it fails where the driver does
// not report one.
func (p *devicePrinter) Status(ctx context.Context) (Status, error) {
	f, err := os.OpenFile(p.path, os.O_WRONLY, 0)
	if err != nil {
		return Status{}, fmt.Errorf("printer: open %s: %w", p.path, err)
	}
	defer f.Close()
	st, ok := lpStatus(f)
	if !ok {
		return Status{}, fmt.Errorf("printer: %s reports no status", p.path)
	}
	return st, nil
}

func (p *devicePrinter) Close() error { return nil }

// writeFileTimeout writes data to f, giving up after timeout or when ctx ends. Files
// the runtime poller can wait on get a write deadline; others are written from a
// goroutine and closed on timeout to unblock it.
func writeFileTimeout(ctx context.Context, f *os.File, data []byte, timeout time.Duration) error {
	if err := f.SetWriteDeadline(time.Now().Add(timeout)); err == nil {
		stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
		if err := ctx.Err(); err != nil {
			return err
		}
		err := writeFull(f, data)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return err
	}
	return writeTimeout(ctx, f, func() { f.Close() }, data, timeout)
}

// writeTimeout writes data to w from a goroutine and calls abort when the write takes
// longer than timeout or ctx ends. The goroutine ends when the write returns, which
// abort is meant to force.
func writeTimeout(ctx context.Context, w io.Writer, abort func(), data []byte, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- writeFull(w, data) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		abort()
		return fmt.Errorf("%w after %v", ErrTimeout, timeout)
	case <-ctx.Done():
		abort()
		return ctx.Err()
	}
}
