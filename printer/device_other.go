//go:build !linux

package printer

import "os"

// lpStatus is only implemented on Linux.
func lpStatus(f *os.File) (Status, bool) { return Status{}, false }
