package store

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Snapshot writes a consistent copy of the open database to dst (replacing it) in
// one read transaction, through a temporary file, fsync and rename. A firmware update
// takes one before it switches, and a rollback puts it back, so a store migration of
// the new version never strands the version it replaces (docs/firmware.md). The
// firmware state itself is not in this file: a restore must not take it back.
func (s *Store) Snapshot(dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	err = s.tx(false, func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(tmp)
		return err
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("store: snapshot: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
