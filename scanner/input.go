package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/walletless/walletless/device"
)

// InputPrefix starts a Config.Source that reads a keyboard-wedge (HID) scanner through
// Linux evdev: "input:/dev/input/event3", "input:/dev/input/by-id/...-event-kbd" or
// "input:usb:VID:PID".
const InputPrefix = "input:"

// runInput reads a keyboard-wedge scanner, reconnecting like a serial one.
func (p *pipeline) runInput(ctx context.Context, spec string) error {
	spec = strings.TrimPrefix(spec, InputPrefix)
	var sel device.Selector
	if strings.HasPrefix(strings.ToLower(spec), "usb:") {
		var err error
		if sel, err = device.ParseSelector(spec); err != nil {
			return fmt.Errorf("scanner: %w", err)
		}
	} else {
		sel = device.Selector{Path: spec}
	}
	return p.runDevice(ctx, func() (string, device.Port, error) {
		path := sel.Path
		if sel.IsUSB() {
			inputs, err := p.cfg.ListInputs()
			if err != nil {
				return "", nil, err
			}
			path = ""
			for _, in := range inputs {
				if in.VID == sel.VID && in.PID == sel.PID {
					path = in.Path
					break
				}
			}
			if path == "" {
				return "", nil, fmt.Errorf("%w: no input device with USB id %s", device.ErrNotFound, sel)
			}
		} else if _, err := os.Stat(path); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %w", device.ErrNotFound, path, err)
		}
		f, err := p.cfg.OpenInput(path)
		if err != nil {
			return "", nil, err
		}
		return path, newKeyPort(f, p.cfg.Keymap, p.cfg.Poll), nil
	})
}

// keyPort makes an input device look like a serial port to readPort: Read returns
// the typed text (CR at Enter), and (0, nil) when poll passes without a key.
type keyPort struct {
	f       io.ReadCloser
	kr      *device.KeyReader
	dec     *keyDecoder
	poll    time.Duration
	evs     []device.KeyEvent
	pending []byte
}

func newKeyPort(f io.ReadCloser, k Keymap, poll time.Duration) *keyPort {
	return &keyPort{f: f, kr: device.NewKeyReader(f), dec: newKeyDecoder(k), poll: poll, evs: make([]device.KeyEvent, 64)}
}

func (k *keyPort) Read(b []byte) (int, error) {
	if len(k.pending) == 0 {
		if d, ok := k.f.(interface{ SetReadDeadline(time.Time) error }); ok && k.poll > 0 {
			_ = d.SetReadDeadline(time.Now().Add(k.poll))
		}
		n, err := k.kr.Read(k.evs)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, nil
			}
			return 0, err
		}
		k.pending = k.dec.feed(k.evs[:n], k.pending[:0])
	}
	n := copy(b, k.pending)
	k.pending = k.pending[n:]
	return n, nil
}

func (k *keyPort) Write(b []byte) (int, error) {
	return 0, errors.New("scanner: an input device is read-only")
}

func (k *keyPort) Close() error { return k.f.Close() }
