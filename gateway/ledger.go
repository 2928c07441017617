package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var bucketLedger = []byte("ledger")

// ErrLocked means another process (a running posgw) holds the ledger file.
var ErrLocked = errors.New("gateway: ledger is in use by another process")

// Entry is one sale in the ledger.
type Entry struct {
	Key         string    `json:"key"`
	Device      string    `json:"device"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Scheme      string    `json:"scheme"`
	MaskedCode  string    `json:"masked_code"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	DecidedAt   time.Time `json:"decided_at"`
	Requests    int       `json:"requests"` // how many times the device sent this key
}

// Ledger is posgw's durable record of every decided key.
type Ledger struct {
	db *bolt.DB
}

// OpenLedger opens or creates the ledger at path.
func OpenLedger(path string, readOnly bool) (*Ledger, error) {
	if !readOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: open ledger %s: %w", path, err)
	}
	if !readOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucketLedger)
			return err
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return &Ledger{db: db}, nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error { return l.db.Close() }

// Decide returns the stored entry for key, or stores and returns decide()'s entry when
// the key is new. It reports whether the key was seen before. Deciding and storing
// happen in one transaction, so a key is decided exactly once.
func (l *Ledger) Decide(key string, decide func() Entry) (Entry, bool, error) {
	var (
		out  Entry
		seen bool
	)
	err := l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLedger)
		if raw := b.Get([]byte(key)); raw != nil {
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			seen = true
		} else {
			out = decide()
		}
		out.Requests++
		raw, err := json.Marshal(&out)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), raw)
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("gateway: ledger: %w", err)
	}
	return out, seen, nil
}

// ForEach calls fn for every entry in key order (keys are time-ordered UUIDv7).
func (l *Ledger) ForEach(fn func(Entry) error) error {
	return l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLedger)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("gateway: ledger entry: %w", err)
			}
			return fn(e)
		})
	})
}
