// Package device is the only part of Walletless that opens hardware: serial ports
// (through go.bug.st/serial and its USB enumerator) and, in later files, GPIO lines for
// the status indicators.
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
//   - The USB identity of a port comes from sysfs on Linux. Ports that are not USB
//     (on-board UARTs, pseudo terminals) have no VID/PID and can only be chosen by path.
package device
