// Package device is the only part of Walletless that opens hardware: serial ports
// (through go.bug.st/serial and its USB enumerator) and GPIO lines for the status
// indicators (a green LED, a red LED and a buzzer, driven through periph.io's
// gpio.PinOut by [Indicators]), input devices of keyboard-wedge scanners
// ([OpenInput] grabs /dev/input/event*, [KeyReader] decodes its events) and V4L2
// cameras ([OpenCamera], pure Go, memory-mapped streaming).
//
// A serial port is chosen by a [Selector]: either a path (/dev/ttyACM0,
// /dev/serial/by-id/...) or a USB identity "usb:VID:PID[:SERIAL]" that is looked up in
// the system's port list each time, so a scanner that the kernel renumbers after a
// replug (/dev/ttyACM0 becoming /dev/ttyACM1) is found again.
//
// # Caveats
//
//   - go.bug.st/serial's Read returns (0, nil) when its read timeout expires. Callers
//     must treat that as "nothing yet", not as end of file. [Port] documents it again.
//   - A blocking Read ignores contexts. Close the port from another goroutine to end
//     it; [Port.Close] is safe to call concurrently with Read and more than once.
//   - GPIO lines are looked up in periph's registry first (filled only when periph's
//     host drivers are loaded) and then opened directly through the Linux GPIO
//     character device (/dev/gpiochip*, uAPI v2, kernel 5.10+). Without a chip, or
//     without permission (the user needs the gpio group), indicators are a no-op and
//     say so in one log line.
//   - A line requested by another program (or by a second posd) is busy; the kernel
//     releases it when the process exits.
//   - Linux-only parts (GPIO character device, evdev, V4L2) live in *_linux.go files
//     with stubs elsewhere; their kernel struct layouts are checked at compile time
//     for 32- and 64-bit builds. They need read/write access to the device nodes
//     (groups gpio, input, video).
//   - A frame from Camera.Next may be the driver's own buffer: it is valid until the
//     next call to Next.
//   - The USB identity of a port comes from sysfs on Linux. Ports that are not USB
//     (on-board UARTs, pseudo terminals) have no VID/PID and can only be chosen by path.
package device
