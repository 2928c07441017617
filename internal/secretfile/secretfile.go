// Package secretfile reads and writes files that hold secrets (keys, passwords,
// tokens) the way ssh treats its private keys: a secret file that its group or others
// can read is refused, with the chmod that fixes it.
package secretfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrTooOpen is wrapped by the errors of Check and Read for a file that its group or
// others may read or write.
var ErrTooOpen = errors.New("secretfile: readable or writable by group or others")

// Check returns an error wrapping ErrTooOpen when path's mode lets its group or
// others read or write it; the message gives the chmod to run.
func Check(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	if fi.Mode().Perm()&0o066 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrTooOpen, path, fi.Mode().Perm(), path)
	}
	return nil
}

// Read checks path as Check does and returns its contents.
func Read(path string) ([]byte, error) {
	if err := Check(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	return b, nil
}

// Write atomically replaces path with data at mode 0600: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this finds nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("secretfile: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("secretfile: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("secretfile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	return syncDir(dir)
}

// PrivateDir makes dir (and its parents) if needed and makes sure dir itself is
// mode 0700, tightening it when it is wider.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("secretfile: %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("secretfile: %s has mode %04o and cannot be made 0700: %w", dir, fi.Mode().Perm(), err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("secretfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("secretfile: sync %s: %w", dir, err)
	}
	return nil
}
