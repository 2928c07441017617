package device

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// eviocgrab is EVIOCGRAB, _IOW('E', 0x90, int).
const eviocgrab = 0x40044590

// sysInput is where the kernel describes input devices; tests replace it.
var sysInput = "/sys/class/input"

// OpenInput opens a Linux input device (/dev/input/event*) and grabs it, so its key
// presses reach only Walletless and not the console or a desktop session. The grab
// ends when the file is closed. Close the file from another goroutine to end a
// blocked Read.
func OpenInput(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("device: opening %s: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("device: %s: %w", path, err)
	}
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		gerr = unix.IoctlSetInt(int(fd), eviocgrab, 1)
	}); err != nil {
		gerr = err
	}
	if gerr != nil {
		f.Close()
		return nil, fmt.Errorf("device: grabbing %s (in use by another program?): %w", path, gerr)
	}
	return f, nil
}

// ListInputs returns the input devices (event nodes) with their names and USB ids.
func ListInputs() ([]InputInfo, error) {
	ents, err := os.ReadDir(sysInput)
	if err != nil {
		return nil, fmt.Errorf("device: listing input devices: %w", err)
	}
	var out []InputInfo
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "event") {
			continue
		}
		dev := filepath.Join(sysInput, e.Name(), "device")
		out = append(out, InputInfo{
			Path: "/dev/input/" + e.Name(),
			Name: readSys(filepath.Join(dev, "name")),
			VID:  normHex(readSys(filepath.Join(dev, "id", "vendor"))),
			PID:  normHex(readSys(filepath.Join(dev, "id", "product"))),
			Phys: readSys(filepath.Join(dev, "phys")),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func readSys(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
