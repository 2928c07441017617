package store

import (
	"path/filepath"
	"testing"
)

// TestSnapshotOpens: a snapshot of an open store is a store with the same outbox.
func TestSnapshotOpens(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "posd.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *Tx) error { _, err := tx.Enqueue([]byte("sale 1")); return err }); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "snapshot.db")
	if err := s.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	c, err := Open(snap, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d, _, _ := c.OutboxStats(); d != 1 {
		t.Errorf("snapshot outbox depth %d", d)
	}
}
