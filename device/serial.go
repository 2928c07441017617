package device

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// PortInfo describes one serial port as the system enumerator sees it.
type PortInfo struct {
	Name         string `json:"name"` // device path, e.g. /dev/ttyACM0
	IsUSB        bool   `json:"is_usb"`
	VID          string `json:"vid,omitempty"` // upper-case hex, e.g. "05E0"
	PID          string `json:"pid,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
}

// ListPorts returns the system's serial ports, sorted by name, with USB details where
// the port is a USB device. It never probes devices actively.
func ListPorts() ([]PortInfo, error) {
	details, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("device: listing serial ports: %w", err)
	}
	out := make([]PortInfo, 0, len(details))
	for _, d := range details {
		if d == nil || d.Name == "" {
			continue
		}
		out = append(out, PortInfo{
			Name: d.Name, IsUSB: d.IsUSB,
			VID: normHex(d.VID), PID: normHex(d.PID), Serial: d.SerialNumber,
			Manufacturer: d.Manufacturer, Product: d.Product,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Selector chooses a serial port: by Path, or by USB identity (VID, PID and optionally
// Serial). The zero Selector selects nothing.
type Selector struct {
	Path   string
	VID    string // upper-case hex, 4 digits
	PID    string
	Serial string // USB serial number; "" matches any
}

// ParseSelector parses "usb:VID:PID[:SERIAL]" (hex VID and PID, e.g.
// "usb:05e0:1200:S123") or a device path.
func ParseSelector(s string) (Selector, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Selector{}, fmt.Errorf("%w: empty", ErrBadSelector)
	}
	if !strings.HasPrefix(strings.ToLower(s), "usb:") {
		return Selector{Path: s}, nil
	}
	parts := strings.SplitN(s[len("usb:"):], ":", 3)
	if len(parts) < 2 {
		return Selector{}, fmt.Errorf("%w: %q: want usb:VID:PID[:SERIAL]", ErrBadSelector, s)
	}
	sel := Selector{VID: normHex(parts[0]), PID: normHex(parts[1])}
	if len(parts) == 3 {
		sel.Serial = parts[2]
	}
	if !isHex16(sel.VID) || !isHex16(sel.PID) {
		return Selector{}, fmt.Errorf("%w: %q: VID and PID are 1-4 hex digits", ErrBadSelector, s)
	}
	return sel, nil
}

// String returns the selector in the form ParseSelector accepts.
func (s Selector) String() string {
	if s.Path != "" {
		return s.Path
	}
	if s.Serial != "" {
		return "usb:" + s.VID + ":" + s.PID + ":" + s.Serial
	}
	return "usb:" + s.VID + ":" + s.PID
}

// IsUSB reports whether the selector chooses by USB identity.
func (s Selector) IsUSB() bool { return s.Path == "" && s.VID != "" }

// Matches reports whether p has the selector's USB identity.
func (s Selector) Matches(p PortInfo) bool {
	if !s.IsUSB() || !p.IsUSB {
		return false
	}
	return normHex(p.VID) == s.VID && normHex(p.PID) == s.PID &&
		(s.Serial == "" || p.Serial == s.Serial)
}

// Resolve finds the device path for sel among ports. A path selector resolves to itself
// if the path exists. A USB selector resolves to the first matching port by name.
// The error wraps ErrNotFound when nothing matches.
func Resolve(sel Selector, ports []PortInfo) (string, error) {
	if sel.Path != "" {
		if _, err := os.Stat(sel.Path); err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrNotFound, sel.Path, err)
		}
		return sel.Path, nil
	}
	if !sel.IsUSB() {
		return "", fmt.Errorf("%w: empty selector", ErrBadSelector)
	}
	var names []string
	for _, p := range ports {
		if sel.Matches(p) {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("%w: no port with USB id %s", ErrNotFound, sel)
	}
	sort.Strings(names)
	return names[0], nil
}

// Identify returns the USB identity of the port at path, found among ports (by name or
// by the symlink's target, so /dev/serial/by-id paths work). ok is false for ports that
// are not USB.
func Identify(path string, ports []PortInfo) (sel Selector, ok bool) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	for _, p := range ports {
		if !p.IsUSB || p.VID == "" {
			continue
		}
		if p.Name == path || p.Name == real {
			return Selector{VID: normHex(p.VID), PID: normHex(p.PID), Serial: p.Serial}, true
		}
	}
	return Selector{}, false
}

// SerialConfig is how a serial port is opened.
type SerialConfig struct {
	Baud int // default 9600
	// ReadTimeout bounds each Read; when it expires Read returns (0, nil). 0 means
	// 100 ms. A negative value blocks until data arrives or the port is closed.
	ReadTimeout time.Duration
}

// Port is an open serial port.
//
// Read returns (0, nil) when the read timeout expires with no data; it returns an error
// when the device is unplugged or the port is closed. Close may be called from another
// goroutine to end a blocked Read, and more than once.
type Port interface {
	io.ReadWriteCloser
}

// OpenSerial opens the serial port at path in raw 8N1 mode.
func OpenSerial(path string, cfg SerialConfig) (Port, error) {
	baud := cfg.Baud
	if baud <= 0 {
		baud = 9600
	}
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("device: opening %s: %w", path, err)
	}
	rt := cfg.ReadTimeout
	switch {
	case rt == 0:
		rt = 100 * time.Millisecond
	case rt < 0:
		rt = serial.NoTimeout
	}
	if err := p.SetReadTimeout(rt); err != nil {
		p.Close()
		return nil, fmt.Errorf("device: setting read timeout on %s: %w", path, err)
	}
	return &port{p: p, path: path}, nil
}

// port wraps serial.Port so that Close is idempotent and errors carry our prefix.
type port struct {
	p    serial.Port
	path string

	once sync.Once
	err  error // set once by Close
}

func (p *port) Read(b []byte) (int, error) {
	n, err := p.p.Read(b)
	if err != nil {
		return n, fmt.Errorf("device: reading %s: %w", p.path, err)
	}
	return n, nil
}

func (p *port) Write(b []byte) (int, error) {
	n, err := p.p.Write(b)
	if err != nil {
		return n, fmt.Errorf("device: writing %s: %w", p.path, err)
	}
	return n, nil
}

func (p *port) Close() error {
	p.once.Do(func() {
		if err := p.p.Close(); err != nil {
			p.err = fmt.Errorf("device: closing %s: %w", p.path, err)
		}
	})
	return p.err
}

// IsClosed reports whether err says the port was closed or the device went away.
func IsClosed(err error) bool {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		return pe.Code() == serial.PortClosed
	}
	return false
}

func normHex(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "0X")
	for len(s) < 4 && s != "" {
		s = "0" + s
	}
	return s
}

func isHex16(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
