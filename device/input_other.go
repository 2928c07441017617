//go:build !linux

package device

import (
	"errors"
	"fmt"
	"os"
)

var errNoEvdev = errors.New("device: input devices (evdev) are Linux only")

// OpenInput is only implemented on Linux.
func OpenInput(path string) (*os.File, error) {
	return nil, fmt.Errorf("%w: %s", errNoEvdev, path)
}

// ListInputs is only implemented on Linux.
func ListInputs() ([]InputInfo, error) { return nil, errNoEvdev }
