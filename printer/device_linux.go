package printer

import (
	"os"
	"syscall"
	"unsafe"
)

// lpGetStatus is LPGETSTATUS from <linux/lp.h>.
const lpGetStatus = 0x060b

// lpStatus asks the printer class driver for the port status byte (paper empty 0x20,
// selected 0x10, no error 0x08). ok is false when the driver has no status.
func lpStatus(f *os.File) (st Status, ok bool) {
	var v int32
	rc, err := f.SyscallConn()
	if err != nil {
		return Status{}, false
	}
	var errno syscall.Errno
	rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, lpGetStatus, uintptr(unsafe.Pointer(&v)))
	})
	if errno != 0 {
		return Status{}, false
	}
	return Status{
		PaperOut: v&0x20 != 0,
		Offline:  v&0x10 == 0,
		Error:    v&0x08 == 0,
	}, true
}
