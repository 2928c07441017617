package device

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// This file speaks the Linux GPIO character device interface, version 2
// (linux/gpio.h, kernel 5.10+), enough to drive output lines. The structs mirror the
// kernel's; their layout is the same on 32- and 64-bit kernels by design.

type gpioChipInfo struct {
	name  [32]byte
	label [32]byte
	lines uint32
}

type gpioV2LineAttribute struct {
	id      uint32
	padding uint32
	value   uint64 // flags, values or debounce period
}

type gpioV2LineConfigAttribute struct {
	attr gpioV2LineAttribute
	mask uint64
}

type gpioV2LineConfig struct {
	flags    uint64
	numAttrs uint32
	padding  [5]uint32
	attrs    [10]gpioV2LineConfigAttribute
}

type gpioV2LineRequest struct {
	offsets         [64]uint32
	consumer        [32]byte
	config          gpioV2LineConfig
	numLines        uint32
	eventBufferSize uint32
	padding         [5]uint32
	fd              int32
}

type gpioV2LineInfo struct {
	name     [32]byte
	consumer [32]byte
	offset   uint32
	numAttrs uint32
	flags    uint64
	attrs    [10]gpioV2LineAttribute
	padding  [4]uint32
}

type gpioV2LineValues struct {
	bits uint64
	mask uint64
}

const (
	gpioV2LineFlagOutput = 1 << 3

	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 0xB4<<8 | nr }

var (
	gpioGetChipInfoIoctl     = ioc(iocRead, 0x01, unsafe.Sizeof(gpioChipInfo{}))
	gpioV2GetLineInfoIoctl   = ioc(iocRead|iocWrite, 0x05, unsafe.Sizeof(gpioV2LineInfo{}))
	gpioV2GetLineIoctl       = ioc(iocRead|iocWrite, 0x07, unsafe.Sizeof(gpioV2LineRequest{}))
	gpioV2LineSetValuesIoctl = ioc(iocRead|iocWrite, 0x0F, unsafe.Sizeof(gpioV2LineValues{}))
	gpioChipGlob             = "/dev/gpiochip*"
	gpioConsumer             = "walletless"
	errGPIOLineBusy          = "line busy (used by another program?)"
)

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// openGPIOLine requests one output line, by "gpiochipN:OFFSET" or by line name
// searched on every chip.
func openGPIOLine(name string) (gpio.PinOut, error) {
	chip, offset, err := findGPIOLine(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(chip, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoGPIO, chip, err)
	}
	defer f.Close()
	var req gpioV2LineRequest
	req.offsets[0] = offset
	req.numLines = 1
	copy(req.consumer[:], gpioConsumer)
	req.config.flags = gpioV2LineFlagOutput
	if err := ioctl(int(f.Fd()), gpioV2GetLineIoctl, unsafe.Pointer(&req)); err != nil {
		if err == unix.EBUSY {
			return nil, fmt.Errorf("%w: %s line %d: %s", ErrNoGPIO, chip, offset, errGPIOLineBusy)
		}
		return nil, fmt.Errorf("%w: requesting %s line %d: %w", ErrNoGPIO, chip, offset, err)
	}
	return &gpioLine{name: name, chip: chip, offset: int(offset), fd: int(req.fd)}, nil
}

// findGPIOLine resolves name to a chip path and line offset.
func findGPIOLine(name string) (string, uint32, error) {
	if chip, off, ok := strings.Cut(name, ":"); ok && strings.HasPrefix(chip, "gpiochip") {
		n, err := strconv.ParseUint(off, 10, 32)
		if err != nil {
			return "", 0, fmt.Errorf("%w: %q: bad line offset", ErrNoGPIO, name)
		}
		return "/dev/" + chip, uint32(n), nil
	}
	chips, _ := filepath.Glob(gpioChipGlob)
	if len(chips) == 0 {
		return "", 0, fmt.Errorf("%w: no GPIO chip (%s)", ErrNoGPIO, gpioChipGlob)
	}
	sort.Strings(chips)
	for _, chip := range chips {
		if off, ok := lineByName(chip, name); ok {
			return chip, off, nil
		}
	}
	return "", 0, fmt.Errorf("%w: no line named %q on %s", ErrNoGPIO, name, strings.Join(chips, ", "))
}

func lineByName(chip, name string) (uint32, bool) {
	f, err := os.OpenFile(chip, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var info gpioChipInfo
	if ioctl(int(f.Fd()), gpioGetChipInfoIoctl, unsafe.Pointer(&info)) != nil {
		return 0, false
	}
	for off := uint32(0); off < info.lines && off < 1024; off++ {
		li := gpioV2LineInfo{offset: off}
		if ioctl(int(f.Fd()), gpioV2GetLineInfoIoctl, unsafe.Pointer(&li)) != nil {
			continue
		}
		if cstring(li.name[:]) == name {
			return off, true
		}
	}
	return 0, false
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// gpioLine is one requested output line. It implements gpio.PinOut.
type gpioLine struct {
	name   string
	chip   string
	offset int

	mu sync.Mutex
	fd int // guarded by mu; -1 when closed
}

func (l *gpioLine) String() string   { return fmt.Sprintf("%s(%s:%d)", l.name, l.chip, l.offset) }
func (l *gpioLine) Name() string     { return l.name }
func (l *gpioLine) Number() int      { return l.offset }
func (l *gpioLine) Function() string { return "Out" }
func (l *gpioLine) Halt() error      { return l.Out(gpio.Low) }

func (l *gpioLine) Out(level gpio.Level) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return fmt.Errorf("device: GPIO %s is closed", l.name)
	}
	v := gpioV2LineValues{mask: 1}
	if level == gpio.High {
		v.bits = 1
	}
	if err := ioctl(l.fd, gpioV2LineSetValuesIoctl, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("device: setting GPIO %s: %w", l.name, err)
	}
	return nil
}

func (l *gpioLine) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("device: GPIO %s: PWM is not supported", l.name)
}

// Close releases the line.
func (l *gpioLine) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	if err != nil {
		return fmt.Errorf("device: releasing GPIO %s: %w", l.name, err)
	}
	return nil
}

// Compile-time checks that the structs have the kernel's sizes on every architecture.
var (
	_ [68 - unsafe.Sizeof(gpioChipInfo{})]struct{}
	_ [unsafe.Sizeof(gpioChipInfo{}) - 68]struct{}
	_ [256 - unsafe.Sizeof(gpioV2LineInfo{})]struct{}
	_ [unsafe.Sizeof(gpioV2LineInfo{}) - 256]struct{}
	_ [592 - unsafe.Sizeof(gpioV2LineRequest{})]struct{}
	_ [unsafe.Sizeof(gpioV2LineRequest{}) - 592]struct{}
	_ [16 - unsafe.Sizeof(gpioV2LineValues{})]struct{}
	_ [unsafe.Sizeof(gpioV2LineValues{}) - 16]struct{}
)
