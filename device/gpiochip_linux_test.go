package device

import (
	"errors"
	"testing"
)

// TestGPIOIoctlNumbers checks the request numbers against linux/gpio.h.
func TestGPIOIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"GPIO_GET_CHIPINFO_IOCTL", gpioGetChipInfoIoctl, 0x8044b401},
		{"GPIO_V2_GET_LINEINFO_IOCTL", gpioV2GetLineInfoIoctl, 0xc100b405},
		{"GPIO_V2_GET_LINE_IOCTL", gpioV2GetLineIoctl, 0xc250b407},
		{"GPIO_V2_LINE_SET_VALUES_IOCTL", gpioV2LineSetValuesIoctl, 0xc010b40f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestOpenGPIOLineWithoutChip(t *testing.T) {
	old := gpioChipGlob
	gpioChipGlob = t.TempDir() + "/gpiochip*"
	defer func() { gpioChipGlob = old }()
	if _, err := openGPIOLine("GPIO17"); !errors.Is(err, ErrNoGPIO) {
		t.Errorf("openGPIOLine without a chip = %v, want ErrNoGPIO", err)
	}
	if _, err := openGPIOLine("gpiochip99:x"); !errors.Is(err, ErrNoGPIO) {
		t.Errorf("bad offset: %v", err)
	}
	if _, err := openGPIOLine("gpiochip99:17"); !errors.Is(err, ErrNoGPIO) {
		t.Errorf("missing chip: %v", err)
	}
}
