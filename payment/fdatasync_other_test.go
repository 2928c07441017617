//go:build !linux

package payment

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
