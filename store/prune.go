package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PruneSales walks sales in id order and deletes those for which decide returns
// del=true, stopping when it returns stop=true or after limit deletions (so one
// transaction stays short; call again for more). Sale ids sort by creation time, so a
// caller pruning by age stops at the first sale that is too young and never reads the
// rest. It returns how many sales were deleted.
func (s *Store) PruneSales(limit int, decide func(id string, doc []byte) (del, stop bool)) (int, error) {
	n := 0
	err := s.tx(true, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSales).Cursor()
		for k, v := c.First(); k != nil && n < limit; {
			del, stop := decide(string(k), v)
			if stop {
				return nil
			}
			if del {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				// After Delete the cursor points at the next item in bbolt ≥1.4 only
				// via Seek; re-seek to be correct on every version.
				k, v = c.Seek(k)
				continue
			}
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune sales: %w", err)
	}
	return n, nil
}

// PruneCodes forgets one-time code hashes first used before before.
func (s *Store) PruneCodes(before time.Time) (int, error) {
	n := 0
	err := s.Update(func(tx *Tx) error {
		b := tx.tx.Bucket(bucketCodes)
		var old [][]byte
		err := b.ForEach(func(k, _ []byte) error {
			if at, ok := tx.CodeSeen(k); ok && at.Before(before) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune codes: %w", err)
	}
	return n, nil
}

// Compact rewrites the database file at path into a fresh file without free pages and
// atomically renames it over the original. posd must be stopped: Compact takes the
// file lock first and fails with ErrLocked after timeout if posd holds it. It returns
// the sizes before and after.
func Compact(path string, timeout time.Duration) (before, after int64, err error) {
	if timeout == 0 {
		timeout = time.Second
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	before = fi.Size()
	// Open read-write so the exclusive lock keeps posd out until the rename is done.
	src, err := Open(path, Options{Timeout: timeout, Verify: true})
	if err != nil {
		return 0, 0, err
	}
	defer src.Close()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := compactGuarded(dst, src); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if fi, err := os.Stat(path); err == nil {
		after = fi.Size()
	}
	return before, after, nil
}

// Check verifies the file's structure and the store's own invariants: every page of
// every bucket and the freelist (read by the store itself, so a damaged page is
// reported rather than panicked on), bbolt's page consistency check, the outbox depth
// counter against the entries, and that every id in the in-doubt index names a stored
// sale or refund. Damage is a *DamagedError (ErrDamaged); broken invariants come
// back joined.
func (s *Store) Check() error {
	if err := verifyFile(s.path); err != nil {
		return err
	}
	if err := s.boltCheck(); err != nil {
		return err
	}
	var errs []error
	err := s.tx(false, func(tx *bolt.Tx) error {
		n := 0
		if err := tx.Bucket(bucketOutbox).ForEach(func(_, _ []byte) error { n++; return nil }); err != nil {
			return err
		}
		var depth uint64
		if v := tx.Bucket(bucketMeta).Get(keyDepth); len(v) == 8 {
			depth = binary.BigEndian.Uint64(v)
		}
		if depth != uint64(n) {
			errs = append(errs, fmt.Errorf("store: outbox depth counter %d, entries %d", depth, n))
		}
		sales, refunds := tx.Bucket(bucketSales), tx.Bucket(bucketRefunds)
		return tx.Bucket(bucketUnsettled).ForEach(func(k, _ []byte) error {
			if sales.Get(k) == nil && refunds.Get(k) == nil {
				errs = append(errs, fmt.Errorf("store: in-doubt index names %s, which is not stored", k))
			}
			return nil
		})
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("store: check: %w", err))
	}
	return errors.Join(errs...)
}

// boltCheck runs bbolt's consistency check (page types, reachability, key order,
// double frees) in one read transaction. Call it only on a file verifyFile passed:
// bbolt walks the pages trusting their structure.
func (s *Store) boltCheck() error {
	var found []string
	err := s.tx(false, func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(found) < maxProblems {
				found = append(found, err.Error())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(found) > 0 {
		return damaged(s.path, fmt.Errorf("bbolt check: %s", strings.Join(found, "; ")))
	}
	return nil
}

// compactGuarded is bolt.Compact with a panic on a damaged page turned into
// ErrDamaged.
func compactGuarded(dst *bolt.DB, src *Store) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damaged(src.path, fmt.Errorf("bbolt panicked while compacting: %v", r))
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return bolt.Compact(dst, src.db, 64<<20)
}

// Backup writes a consistent copy of the database file at path to out, which must not
// exist. It checks the file first (Options.Verify), so a damaged file is never copied
// as if it were good, then copies in one read transaction (bbolt's Tx.WriteTo), writes
// out through a temporary file, fsyncs and renames. posd must be stopped: the file
// lock makes Backup fail with ErrLocked after timeout while posd runs. It returns the
// copy's size.
func Backup(path, out string, timeout time.Duration) (int64, error) {
	if timeout == 0 {
		timeout = time.Second
	}
	if _, err := os.Stat(out); err == nil {
		return 0, fmt.Errorf("%w: %s", ErrExists, out)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	src, err := Open(path, Options{Timeout: timeout, ReadOnly: true, Verify: true})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	var n int64
	err = src.tx(false, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if _, serr := os.Stat(out); serr == nil {
			err = fmt.Errorf("%w: %s", ErrExists, out)
		} else {
			err = os.Rename(tmp, out)
		}
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, ErrDamaged) || errors.Is(err, ErrExists) {
			return 0, err
		}
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return n, nil
}
