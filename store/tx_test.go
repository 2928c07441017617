package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestMigrateFromV1 writes a schema-1 file as the first release did and opens it.
func TestMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posd.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSales, bucketOutbox, bucketMeta} {
			tx.CreateBucket(b)
		}
		s := tx.Bucket(bucketSales)
		s.Put([]byte("a"), []byte(`{"id":"a","status":"approved"}`))
		s.Put([]byte("b"), []byte(`{"id":"b","status":"in_doubt","outbox_seq":1}`))
		s.Put([]byte("c"), []byte(`{"id":"c","status":"waiting_for_code"}`))
		tx.Bucket(bucketOutbox).Put(seqKey(1), []byte("req-b"))
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.Version(); v != SchemaVersion {
		t.Fatalf("version %d after migration", v)
	}
	var got []string
	s.View(func(tx *Tx) error {
		return tx.ForEachUnsettled(func(id, note string) error { got = append(got, id+"="+note); return nil })
	})
	if fmt.Sprint(got) != "[b=in_doubt c=waiting_for_code]" {
		t.Fatalf("in-doubt index after migration: %v", got)
	}
	if es, _ := s.Peek(10, nil); len(es) != 1 || string(es[0].Data) != "req-b" {
		t.Fatalf("outbox after migration: %+v", es)
	}
	if d, oldest, _ := s.OutboxStats(); d != 1 || oldest != 1 {
		t.Fatalf("outbox stats after migration: %d %d", d, oldest)
	}
	// The depth counter follows enqueues and dequeues, repeated ones included.
	s.Update(func(tx *Tx) error {
		a, _ := tx.Enqueue([]byte("x"))
		tx.Enqueue([]byte("y"))
		tx.Dequeue(a)
		tx.Dequeue(a)
		tx.Dequeue(999)
		return nil
	})
	if d, _, _ := s.OutboxStats(); d != 2 {
		t.Fatalf("depth %d, want 2", d)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := open(t)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) })
	s.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open newer = %v", err)
	}
}

func TestTxRollsBackTogether(t *testing.T) {
	s, _ := open(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		tx.PutSale("x", []byte("{}"))
		tx.Enqueue([]byte("m"))
		tx.SetUnsettled("x", "authorizing")
		tx.PutBatch("b", []byte("{}"))
		tx.PutCode([]byte("h"), time.Now())
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if _, err := tx.Sale("x"); !errors.Is(err, ErrNotFound) {
			t.Error("sale visible after rollback")
		}
		if _, err := tx.Batch("b"); !errors.Is(err, ErrNotFound) {
			t.Error("batch visible after rollback")
		}
		if _, ok := tx.CodeSeen([]byte("h")); ok {
			t.Error("code visible after rollback")
		}
		n := 0
		tx.ForEachUnsettled(func(string, string) error { n++; return nil })
		if n != 0 {
			t.Error("index entry visible after rollback")
		}
		return nil
	})
	if d, _, _ := s.OutboxStats(); d != 0 {
		t.Error("outbox entry visible after rollback")
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutMeta("schema_version", []byte("0")) }); err == nil {
		t.Error("reserved meta key writable")
	}
}

func TestPruneSalesAndCodes(t *testing.T) {
	s, _ := open(t)
	s.Update(func(tx *Tx) error {
		for i := range 2500 {
			tx.PutSale(fmt.Sprintf("%05d", i), []byte(fmt.Sprint(i%2)))
		}
		tx.PutCode([]byte("old"), time.Unix(1000, 0))
		tx.PutCode([]byte("new"), time.Unix(5000, 0))
		return nil
	})
	// Delete odd documents among the first 2000 ids, stop at 02000.
	total := 0
	for {
		n, err := s.PruneSales(300, func(id string, doc []byte) (bool, bool) {
			if id >= "02000" {
				return false, true
			}
			return string(doc) == "1", false
		})
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < 300 {
			break
		}
	}
	if total != 1000 {
		t.Fatalf("pruned %d, want 1000", total)
	}
	left := 0
	s.ForEachSale(func(string, []byte) error { left++; return nil })
	if left != 1500 {
		t.Fatalf("%d sales left, want 1500", left)
	}
	if n, _ := s.PruneCodes(time.Unix(2000, 0)); n != 1 {
		t.Fatalf("pruned %d codes", n)
	}
}

func TestCompact(t *testing.T) {
	s, path := open(t)
	big := make([]byte, 4096)
	s.Update(func(tx *Tx) error {
		for i := range 2000 {
			tx.PutSale(fmt.Sprint(i), big)
		}
		return nil
	})
	s.PruneSales(1<<30, func(id string, _ []byte) (bool, bool) { return id != "7", false })
	// While the file is open, compaction fails fast.
	if _, _, err := Compact(path, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("Compact while open = %v", err)
	}
	s.Close()
	before, after, err := Compact(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before {
		t.Fatalf("compaction did not shrink: %d → %d", before, after)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatal("temporary file left behind")
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if doc, err := s2.GetSale("7"); err != nil || len(doc) != 4096 {
		t.Fatalf("sale after compaction: %d %v", len(doc), err)
	}
}

func TestCheck(t *testing.T) {
	s, _ := open(t)
	s.Update(func(tx *Tx) error {
		tx.PutSale("a", []byte("{}"))
		tx.SetUnsettled("a", "authorizing")
		tx.Enqueue([]byte("m"))
		return nil
	})
	if err := s.Check(); err != nil {
		t.Fatalf("healthy store: %v", err)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		tx.Bucket(bucketMeta).Put(keyDepth, seqKey(5))
		return tx.Bucket(bucketUnsettled).Put([]byte("ghost"), []byte("in_doubt"))
	})
	err := s.Check()
	if err == nil || !strings.Contains(err.Error(), "depth counter 5, entries 1") || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("Check = %v", err)
	}
}

func TestBackup(t *testing.T) {
	s, path := open(t)
	s.PutSale("a", []byte("m"), doc("a"))
	out := filepath.Join(t.TempDir(), "backup.db")
	if _, err := Backup(path, out, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("Backup while open = %v, want ErrLocked", err)
	}
	s.Close()
	n, err := Backup(path, out, 0)
	if err != nil || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	if _, err := Backup(path, out, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("Backup onto an existing file = %v", err)
	}
	b, err := Open(out, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := b.GetSale("a"); err != nil || string(got) != `{"s":"a","seq":1}` {
		t.Fatalf("sale in the backup: %s %v", got, err)
	}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
}
