package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this code writes; Open migrates older files.
const SchemaVersion = 2

// Errors returned by the store.
var (
	// ErrNotFound means no record has that id.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked means another process holds the database file open.
	ErrLocked = errors.New("store: database is in use by another process (is posd running? use posctl through the local API)")
	// ErrNewerSchema means the file was written by a newer version of this program.
	ErrNewerSchema = errors.New("store: database was written by a newer version")
	// ErrDamaged means the database file is damaged: truncated, a page that does not
	// parse, or bbolt panicked while reading it. The error (a *DamagedError) names the
	// file and the command that copies every readable record into a new file. It is
	// permanent: retrying does not help; stop posd and salvage.
	ErrDamaged = errors.New("store: damaged database file")
	// ErrExists means the output file of Salvage already exists.
	ErrExists = errors.New("store: output file already exists")
)

var (
	bucketSales     = []byte("sales")     // sale id → document
	bucketOutbox    = []byte("outbox")    // big-endian seq → message
	bucketMeta      = []byte("meta")      // schema version, session, engine counters
	bucketUnsettled = []byte("unsettled") // sale or refund id → status: the in-doubt index
	bucketRefunds   = []byte("refunds")   // refund id → document
	bucketBatches   = []byte("batches")   // batch id → document with running totals
	bucketConfig    = []byte("config")    // config version key → document
	bucketCodes     = []byte("codes")     // hash of a one-time code → first use (unix ms)

	keySchema  = []byte("schema_version")
	keySession = []byte("session")
	keyDepth   = []byte("outbox_depth")
)

// migrations[i] brings a file from schema i to i+1. Each runs in the same transaction
// as the version bump, so a crash leaves the file at the old version, unchanged.
var migrations = []func(tx *bolt.Tx) error{
	0: func(tx *bolt.Tx) error { return createBuckets(tx, bucketSales, bucketOutbox, bucketMeta) },
	1: func(tx *bolt.Tx) error {
		if err := createBuckets(tx, bucketUnsettled, bucketRefunds, bucketBatches, bucketConfig, bucketCodes); err != nil {
			return err
		}
		// The outbox depth counter starts from a count, once.
		depth := tx.Bucket(bucketOutbox).Stats().KeyN
		if err := tx.Bucket(bucketMeta).Put(keyDepth, seqKey(uint64(depth))); err != nil {
			return err
		}
		// Version 1 had no in-doubt index: any sale with a pending outbox entry, or not
		// final, is unsettled. Version 1 files are small (the index did not exist long).
		return tx.Bucket(bucketSales).ForEach(func(k, v []byte) error {
			st := statusOf(v)
			switch st {
			case "approved", "declined", "cancelled":
				return nil
			}
			return tx.Bucket(bucketUnsettled).Put(k, []byte(st))
		})
	},
}

func createBuckets(tx *bolt.Tx, names ...[]byte) error {
	for _, b := range names {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", b, err)
		}
	}
	return nil
}

// statusOf pulls "status" out of a JSON document without knowing its type (used only
// by migrations; the engine owns the documents' meaning).
func statusOf(doc []byte) string {
	const key = `"status":"`
	for i := 0; i+len(key) <= len(doc); i++ {
		if string(doc[i:i+len(key)]) == key {
			rest := doc[i+len(key):]
			for j, c := range rest {
				if c == '"' {
					return string(rest[:j])
				}
			}
		}
	}
	return ""
}

// Store is an open database file. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	pageSize int
	failed   atomic.Pointer[DamagedError] // set when a panic left bbolt's locks in doubt
}

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for the file lock; default one second.
	Timeout time.Duration
	// ReadOnly opens the file without write access (for offline inspection).
	ReadOnly bool
	// NoSync skips fsync (benchmarks of the floor only; never in posd).
	NoSync bool
	// Verify checks the whole file before it is used (what posd does at start): every
	// page of every bucket, the freelist, then bbolt's own consistency check. Damage
	// is ErrDamaged. Without it Open still checks the meta pages, the file's length
	// and the freelist page, which is what bbolt.Open itself trusts.
	Verify bool
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
	// A damaged meta or freelist page, or a truncated file, makes bbolt.Open panic or
	// map pages past the end of the file: look before bbolt does.
	if err := preflight(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			return nil, damaged(path, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.NoSync = opts.NoSync
	s := &Store{db: db, path: path, pageSize: db.Info().PageSize}
	if opts.Verify {
		// The structure is checked first: bbolt's own check trusts what it walks.
		if err := verifyFile(path); err != nil {
			db.Close()
			return nil, err
		}
		if err := s.boltCheck(); err != nil {
			db.Close()
			return nil, err
		}
	}
	if !opts.ReadOnly {
		if err := s.migrate(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// Version returns the file's schema version.
func (s *Store) Version() (int, error) {
	v := 0
	err := s.tx(false, func(tx *bolt.Tx) error {
		var err error
		v, err = schemaOf(tx)
		return err
	})
	return v, err
}

func schemaOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	raw := meta.Get(keySchema)
	if raw == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, fmt.Errorf("store: bad schema version %q: %w", raw, err)
	}
	return n, nil
}

// migrate brings the schema to SchemaVersion, one step per transaction.
func (s *Store) migrate() error {
	for {
		done := false
		err := s.tx(true, func(tx *bolt.Tx) error {
			v, err := schemaOf(tx)
			if err != nil {
				return err
			}
			if v > SchemaVersion {
				return fmt.Errorf("%w: schema %d, this program knows %d", ErrNewerSchema, v, SchemaVersion)
			}
			if v == SchemaVersion {
				done = true
				return nil
			}
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("store: migrate schema %d to %d: %w", v, v+1, err)
			}
			return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(v+1)))
		})
		if err != nil || done {
			return err
		}
	}
}

// Close closes the file. A store marked failed (see Failed) is left open: see
// below.
func (s *Store) Close() error {
	if s.failed.Load() != nil {
		// bbolt's locks may be held by the transaction that panicked: closing would
		// wait for them forever. The process is about to exit; the OS releases the
		// file, its lock and its mapping.
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// openBolt is bolt.Open with a panic or a fault on the file's pages turned into
// ErrDamaged (the preflight should have caught those; this is the net under it).
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, damaged(path, fmt.Errorf("bbolt panicked while opening: %v", r))
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return bolt.Open(path, 0o600, opts)
}

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
	err = s.Update(func(tx *Tx) error {
		if outbox != nil {
			n, err := tx.Enqueue(outbox)
			if err != nil {
				return err
			}
			seq = n
		}
		doc, err := sale(seq)
		if err != nil {
			return err
		}
		return tx.PutSale(id, doc)
	})
	if err != nil {
		return 0, fmt.Errorf("store: put sale: %w", err)
	}
	return seq, nil
}

// ResolveSale writes the sale document under id and removes outbox entry seq (if it
// is not zero and still there) in one transaction.
func (s *Store) ResolveSale(id string, sale []byte, seq uint64) error {
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutSale(id, sale); err != nil {
			return err
		}
		return tx.Dequeue(seq)
	})
	if err != nil {
		return fmt.Errorf("store: resolve sale: %w", err)
	}
	return nil
}

// GetSale returns a copy of the sale document stored under id.
func (s *Store) GetSale(id string) ([]byte, error) {
	var out []byte
	err := s.View(func(tx *Tx) error {
		var err error
		out, err = tx.Sale(id)
		return err
	})
	return out, err
}

// ForEachSale calls fn with a copy of every sale document in id order until fn
// returns an error.
func (s *Store) ForEachSale(fn func(id string, sale []byte) error) error {
	return s.tx(false, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSales).ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// Peek returns up to max outbox entries in FIFO order, skipping those for which skip
// returns true (for example entries already in flight). skip may be nil.
func (s *Store) Peek(max int, skip func(seq uint64) bool) ([]Entry, error) {
	var out []Entry
	err := s.tx(false, func(tx *bolt.Tx) error {
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
	err := s.Update(func(tx *Tx) error {
		for _, seq := range seqs {
			if err := tx.Dequeue(seq); err != nil {
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

// OutboxStats reports how many entries wait and the sequence of the oldest. It reads
// a counter kept with every enqueue and dequeue and the first key: constant time
// however long the outbox is.
func (s *Store) OutboxStats() (depth int, oldest uint64, err error) {
	err = s.tx(false, func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyDepth); len(v) == 8 {
			depth = int(binary.BigEndian.Uint64(v))
		}
		if k, _ := tx.Bucket(bucketOutbox).Cursor().First(); k != nil {
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
	err := s.tx(true, func(tx *bolt.Tx) error {
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
