package store

import (
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// DamagedError is ErrDamaged with the file and what was found; errors.Is(err,
// ErrDamaged) holds for it. Its message tells the operator what to run.
type DamagedError struct {
	Path string
	Err  error // what was found
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("store: damaged database file %s: %v; stop posd and run: posctl store salvage %s %s (see docs/operations.md)",
		e.Path, e.Err, e.Path, SalvageName(e.Path))
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// Unwrap returns what was found.
func (e *DamagedError) Unwrap() error { return e.Err }

// SalvageName is the output file the damage message suggests for path: beside it,
// named posd-salvaged.db for posd.db.
func SalvageName(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-salvaged" + ext
}

func damaged(path string, err error) error {
	return &DamagedError{Path: path, Err: err}
}

// tx runs fn in a bbolt transaction and turns a panic inside bbolt (or the store's
// own reading of bbolt's memory) into ErrDamaged. bbolt trusts its pages: a damaged
// one makes it index out of range, panic with "invalid page type", or touch memory
// past the end of a truncated file. Faults on the mmap are turned into panics for
// the duration of the call (debug.SetPanicOnFault), so a SIGBUS is recovered too.
//
// bbolt rolls its transaction back on a panic. When it could not (the transaction is
// still open, or the panic came before it began), its locks may still be held, so
// the store is marked failed: every later call returns the same ErrDamaged instead
// of waiting forever on the lock.
//
// A panic from the caller's own code (not bbolt, not this package) is not damage and
// is re-raised.
func (s *Store) tx(writable bool, fn func(*bolt.Tx) error) (err error) {
	if f := s.failed.Load(); f != nil {
		return f
	}
	var btx *bolt.Tx
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !fromStore(r) {
			panic(r)
		}
		derr := &DamagedError{Path: s.path, Err: fmt.Errorf("bbolt panicked: %v", r)}
		err = derr
		if btx != nil && btx.DB() != nil {
			func() {
				defer func() { _ = recover() }()
				_ = btx.Rollback()
			}()
		}
		if btx == nil || btx.DB() != nil {
			s.failed.CompareAndSwap(nil, derr)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	inner := func(t *bolt.Tx) error {
		btx = t
		return fn(t)
	}
	if writable {
		return s.db.Update(inner)
	}
	return s.db.View(inner)
}

// Failed returns the ErrDamaged that stopped the store, or nil while it works.
func (s *Store) Failed() error {
	if f := s.failed.Load(); f != nil {
		return f
	}
	return nil
}

// fromStore reports whether a recovered panic comes from reading the file: a memory
// fault, or a panic raised in bbolt or in this package (not in a caller's function).
func fromStore(r any) bool {
	if re, ok := r.(runtime.Error); ok {
		if _, fault := re.(interface{ Addr() uintptr }); fault {
			return true
		}
	}
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	inPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			inPanic = true
		case inPanic && strings.HasPrefix(f.Function, "runtime."):
			// panicIndex, sigpanic, memmove: look further down.
		case inPanic:
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt") ||
				(strings.HasPrefix(f.Function, storePkg+".") && !strings.HasSuffix(f.File, "_test.go"))
		}
		if !more {
			return false
		}
	}
}

// storePkg is this package's import path, as it appears in function names.
var storePkg = func() string {
	pc, _, _, _ := runtime.Caller(0)
	name := runtime.FuncForPC(pc).Name() // …/store.init.func1 or …/store.glob..func1
	if i := strings.LastIndex(name, "/store."); i >= 0 {
		return name[:i+len("/store")]
	}
	return "github.com/walletless/walletless/store"
}()
