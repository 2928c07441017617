//go:build !linux

package device

import (
	"fmt"

	"periph.io/x/conn/v3/gpio"
)

// openGPIOLine is only implemented on Linux.
func openGPIOLine(name string) (gpio.PinOut, error) {
	return nil, fmt.Errorf("%w: %s: GPIO character devices are Linux only", ErrNoGPIO, name)
}
