package printer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Printer is where receipts go. Implementations are safe for concurrent use.
type Printer interface {
	// Print sends one job. name is a file-safe id such as the sale id; transports
	// that keep files use it for their names.
	Print(ctx context.Context, name string, data []byte) error
	Close() error
}

// StatusReader is implemented by printers on two-way transports (TCP, serial, USB
// printer class) that can report their real-time status.
type StatusReader interface {
	Status(ctx context.Context) (Status, error)
}

// Options configure Open beyond the spec string.
type Options struct {
	Log          *slog.Logger  // nil: discard
	Profile      Profile       // zero: DefaultProfile; the emulator renders at its width
	WriteTimeout time.Duration // per job; zero: 10 s
	DialTimeout  time.Duration // TCP connect; zero: 3 s
	// StatusTimeout bounds the wait for a DLE EOT answer; zero: 500 ms.
	StatusTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Profile.WidthDots == 0 {
		o.Profile = DefaultProfile()
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 3 * time.Second
	}
	if o.StatusTimeout <= 0 {
		o.StatusTimeout = 500 * time.Millisecond
	}
}

// Open returns the printer named by spec with default options; see [OpenWith].
func Open(spec string, log *slog.Logger) (Printer, error) {
	return OpenWith(spec, Options{Log: log})
}

// OpenWith returns the printer named by spec:
//
//	none                       discard every job
//	emulator:DIR               render DIR/<name>.png and keep DIR/<name>.bin
//	tcp:HOST[:PORT]            network printer, raw port 9100 by default
//	/dev/usb/lp0, /dev/lp0     USB/parallel printer class device
//	/dev/ttyUSB0[:BAUD]        serial printer (also /dev/ttyS*, /dev/ttyACM*, /dev/pts/*,
//	serial:PATH[:BAUD]         or any path with the serial: prefix); 9600 baud by default
//	file:PATH or PATH          append the bytes to a regular file (created if missing)
//
// Two-way transports (tcp, serial, USB) ask the printer for its status (DLE EOT) before
// each job unless the spec ends in "?status=off". Devices are opened per job or
// reopened after an error, so a printer unplugged at start-up is not an error here.
func OpenWith(spec string, opt Options) (Printer, error) {
	opt.defaults()
	if err := opt.Profile.Validate(); err != nil {
		return nil, err
	}
	spec, status, err := cutStatus(spec)
	if err != nil {
		return nil, err
	}
	log := opt.Log.With("component", "printer")
	switch {
	case spec == "none":
		return discard{}, nil
	case spec == "":
		return nil, fmt.Errorf("%w: empty", ErrSpec)
	case strings.HasPrefix(spec, "emulator:"):
		return newEmulatorPrinter(strings.TrimPrefix(spec, "emulator:"), opt, log)
	case strings.HasPrefix(spec, "tcp:"):
		return newTCPPrinter(strings.TrimPrefix(spec, "tcp:"), status, opt, log)
	case strings.HasPrefix(spec, "serial:"):
		return newSerialSpec(strings.TrimPrefix(spec, "serial:"), status, opt, log)
	case strings.HasPrefix(spec, "file:"):
		return newFilePrinter(strings.TrimPrefix(spec, "file:"), log)
	case strings.HasPrefix(spec, "/dev/usb/lp"), strings.HasPrefix(spec, "/dev/lp"),
		spec == "/dev/walletless/printer": // the udev rules' name for a USB printer (deploy/)
		return newDevicePrinter(spec, status, opt, log), nil
	case isSerialPath(spec):
		return newSerialSpec(spec, status, opt, log)
	}
	fi, err := os.Stat(spec)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return newFilePrinter(spec, log)
	case err != nil:
		return nil, fmt.Errorf("printer: %w", err)
	case fi.Mode().IsRegular():
		return newFilePrinter(spec, log)
	case fi.Mode()&os.ModeCharDevice != 0:
		return newDevicePrinter(spec, false, opt, log), nil
	}
	return nil, fmt.Errorf("%w: %s is neither a regular file nor a device", ErrSpec, spec)
}

func cutStatus(spec string) (string, bool, error) {
	base, q, found := strings.Cut(spec, "?")
	if !found {
		return spec, true, nil
	}
	switch q {
	case "status=off":
		return base, false, nil
	case "status=on":
		return base, true, nil
	}
	return "", false, fmt.Errorf("%w: unknown option %q", ErrSpec, q)
}

func isSerialPath(p string) bool {
	for _, pre := range []string{"/dev/tty", "/dev/pts/", "/dev/serial/", "/dev/rfcomm", "/dev/cu."} {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

func newSerialSpec(s string, status bool, opt Options, log *slog.Logger) (Printer, error) {
	path, baud := s, 9600
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		n, err := strconv.Atoi(s[i+1:])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%w: baud rate in %q", ErrSpec, s)
		}
		path, baud = s[:i], n
	}
	return newSerialPrinter(path, baud, status, opt, log), nil
}

// CheckName reports whether name can be a job name: 1 to 128 characters of letters,
// digits, '-', '_' and '.', not starting with '.'.
func CheckName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("%w: %q", ErrName, name)
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("%w: %q", ErrName, name)
		}
	}
	return nil
}

// discard is the "none" printer.
type discard struct{}

func (discard) Print(ctx context.Context, name string, data []byte) error { return CheckName(name) }
func (discard) Close() error                                              { return nil }

// filePrinter appends every job to one file.
type filePrinter struct {
	path string
	log  *slog.Logger
	mu   chan struct{} // a one-slot semaphore: jobs do not interleave
}

func newFilePrinter(path string, log *slog.Logger) (Printer, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty file path", ErrSpec)
	}
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: directory of %s does not exist", ErrSpec, path)
		}
	}
	return &filePrinter{path: path, log: log, mu: make(chan struct{}, 1)}, nil
}

func (p *filePrinter) Print(ctx context.Context, name string, data []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	select {
	case p.mu <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("printer: %w", ctx.Err())
	}
	defer func() { <-p.mu }()
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("printer: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("printer: append to %s: %w", p.path, err)
	}
	p.log.Debug("printed", "job", name, "bytes", len(data), "file", p.path)
	return nil
}

func (p *filePrinter) Close() error { return nil }

// writeFull writes all of data, treating a short write without error as an error.
func writeFull(w io.Writer, data []byte) error {
	n, err := w.Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	return err
}
