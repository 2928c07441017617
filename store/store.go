package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this code writes; Open migrates older files.
const SchemaVersion = 1

// Errors returned by the store.
var (
	// ErrNotFound means no record has that id.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked means another process holds the database file open.
	ErrLocked = errors.New("store: database is in use by another process (is posd running? use posctl through the local API)")
	// ErrNewerSchema means the file was written by a newer version of this program.
	ErrNewerSchema = errors.New("store: database was written by a newer version")
)

var (
	bucketSales  = []byte("sales")
	bucketOutbox = []byte("outbox")
	bucketMeta   = []byte("meta")

	keySchema  = []byte("schema_version")
	keySession = []byte("session")
)

// Store is an open database file. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for the file lock; default one second.
	Timeout time.Duration
	// ReadOnly opens the file without write access (for offline inspection).
	ReadOnly bool
}

// Open opens or creates the database at path, creating its directory, and runs
// migrations.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if !opts.ReadOnly {
		if err := s.migrate(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// migrate creates the buckets and brings the schema to SchemaVersion.
func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSales, bucketOutbox, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("store: create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := 0
		if raw := meta.Get(keySchema); raw != nil {
			n, err := strconv.Atoi(string(raw))
			if err != nil {
				return fmt.Errorf("store: bad schema version %q: %w", raw, err)
			}
			v = n
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: schema %d, this program knows %d", ErrNewerSchema, v, SchemaVersion)
		}
		// Version 0 -> 1: the buckets above. Later migrations go here, one step each.
		return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// Entry is one outbox message.
type Entry struct {
	Seq  uint64 // FIFO position, never reused
	Data []byte
}

// PutSale writes a sale document under id. When outbox is not nil it is appended to
// the outbox in the same transaction. The document comes from sale, called inside the
// transaction with the new entry's sequence number (0 without outbox), so the sale can
// record which entry belongs to it without a second write.
func (s *Store) PutSale(id string, outbox []byte, sale func(seq uint64) ([]byte, error)) (seq uint64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if outbox != nil {
			ob := tx.Bucket(bucketOutbox)
			n, err := ob.NextSequence()
			if err != nil {
				return err
			}
			seq = n
			if err := ob.Put(seqKey(n), outbox); err != nil {
				return err
			}
		}
		doc, err := sale(seq)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSales).Put([]byte(id), doc)
	})
	if err != nil {
		return 0, fmt.Errorf("store: put sale: %w", err)
	}
	return seq, nil
}

// ResolveSale writes the sale document under id and removes outbox entry seq (if it
// is not zero and still there) in one transaction.
func (s *Store) ResolveSale(id string, sale []byte, seq uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSales).Put([]byte(id), sale); err != nil {
			return err
		}
		if seq == 0 {
			return nil
		}
		return tx.Bucket(bucketOutbox).Delete(seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("store: resolve sale: %w", err)
	}
	return nil
}

// GetSale returns a copy of the sale document stored under id.
func (s *Store) GetSale(id string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSales).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// ForEachSale calls fn with a copy of every sale document in id order until fn
// returns an error.
func (s *Store) ForEachSale(fn func(id string, sale []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSales).ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// Peek returns up to max outbox entries in FIFO order, skipping those for which skip
// returns true (for example entries already in flight). skip may be nil.
func (s *Store) Peek(max int, skip func(seq uint64) bool) ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if skip != nil && skip(seq) {
				continue
			}
			out = append(out, Entry{Seq: seq, Data: append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: peek outbox: %w", err)
	}
	return out, nil
}

// Ack removes outbox entries in one transaction; unknown sequence numbers are ignored.
func (s *Store) Ack(seqs ...uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, seq := range seqs {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: ack: %w", err)
	}
	return nil
}

// OutboxStats reports how many entries wait and the sequence of the oldest.
func (s *Store) OutboxStats() (depth int, oldest uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		depth = b.Stats().KeyN
		if k, _ := b.Cursor().First(); k != nil {
			oldest = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return depth, oldest, err
}

// NextSession increments and returns the persistent session counter (used for the
// MQTT birth/will sequence so a stale will never overwrites a newer birth).
func (s *Store) NextSession() (uint64, error) {
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if raw := b.Get(keySession); len(raw) == 8 {
			n = binary.BigEndian.Uint64(raw)
		}
		n++
		return b.Put(keySession, seqKey(n))
	})
	if err != nil {
		return 0, fmt.Errorf("store: session counter: %w", err)
	}
	return n, nil
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}
