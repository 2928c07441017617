package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketLedger   = []byte("ledger")   // key → Entry (sales and refunds)
	bucketAttempts = []byte("attempts") // key → Attempt
	bucketBatches  = []byte("batches")  // key → Batch

	// The batch indexes of the ledger bucket, kept by PutEntry in the same
	// transaction; values are empty. Every entry is in exactly one of them.
	//
	// bucketByBatch: device 0x00 batch 0x00 key, for entries whose request named
	// their batch. A batch close reads its batch's range with a cursor.
	//
	// bucketByCreated: device 0x00 created_at (12 bytes, sortable) key, for entries
	// without a batch (older devices). Their batch is the created_at window
	// [opened_at, closed_at), and this index reads just that window of the device;
	// scanning every entry without a batch instead would cost a whole old ledger on
	// each close.
	bucketByBatch   = []byte("ledger_by_batch")
	bucketByCreated = []byte("ledger_by_created")
)

// ErrLocked means another process (a running posgw) holds the ledger file.
var ErrLocked = errors.New("gateway: ledger is in use by another process")

// Entry types.
const (
	TypeSale   = "sale"
	TypeRefund = "refund"
)

// Entry is one sale or refund in the ledger.
type Entry struct {
	Key           string    `json:"key"`
	Type          string    `json:"type,omitempty"` // sale (also when empty: older ledgers) or refund
	Device        string    `json:"device"`
	AmountMinor   int64     `json:"amount_minor"`
	Currency      string    `json:"currency"`
	Scheme        string    `json:"scheme"`
	MaskedCode    string    `json:"masked_code"`
	Status        string    `json:"status"` // approved, declined, reversed
	Reason        string    `json:"reason,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"` // device clock
	Batch         string    `json:"batch,omitempty"`     // the device's batch id from the first request; empty from older devices
	DecidedAt     time.Time `json:"decided_at"`
	Requests      int       `json:"requests"`                 // how many times the device sent this key
	OriginalKey   string    `json:"original_key,omitempty"`   // refund: the sale it refunds
	RefundedMinor int64     `json:"refunded_minor,omitempty"` // sale: approved refunds so far
	ReversedAt    time.Time `json:"reversed_at,omitzero"`
}

// IsSale reports whether e is a sale (not a refund).
func (e Entry) IsSale() bool { return e.Type == "" || e.Type == TypeSale }

// Attempt is an audit record as stored.
type Attempt struct {
	Key         string    `json:"key"`
	Device      string    `json:"device"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Kind        string    `json:"kind,omitempty"`
	Scheme      string    `json:"scheme,omitempty"`
	MaskedCode  string    `json:"masked_code,omitempty"`
	Outcome     string    `json:"outcome"`
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	RecordedAt  time.Time `json:"recorded_at"`
}

// Batch is a settlement batch as stored, with the outcome of reconciliation.
type Batch struct {
	Key        string      `json:"key"`
	Device     string      `json:"device"`
	OpenedAt   time.Time   `json:"opened_at"`
	ClosedAt   time.Time   `json:"closed_at"`
	Totals     []BatchLine `json:"totals"`
	Status     string      `json:"status"` // recorded or declined
	Reason     string      `json:"reason,omitempty"`
	RecordedAt time.Time   `json:"recorded_at"`
}

// BatchLine mirrors sync.BatchTotal.
type BatchLine struct {
	Scheme       string `json:"scheme"`
	Currency     string `json:"currency"`
	SalesCount   int64  `json:"sales_count"`
	SalesMinor   int64  `json:"sales_minor"`
	RefundsCount int64  `json:"refunds_count"`
	RefundsMinor int64  `json:"refunds_minor"`
}

// Ledger is posgw's durable record of every decided key. It is safe for concurrent
// use: several Gateways in one process may share it (bbolt serializes writers, and
// each key is decided inside one write transaction).
type Ledger struct {
	db *bolt.DB
}

// OpenLedger opens or creates the ledger at path. A second process fails within a
// second with ErrLocked.
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
			for _, b := range [][]byte{bucketLedger, bucketAttempts, bucketBatches} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return buildIndexes(tx)
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

// Tx is one ledger write transaction.
type Tx struct{ tx *bolt.Tx }

// Update runs fn in one write transaction, committed (fsynced) when fn returns nil.
// Many messages handled in one Update cost one fsync.
func (l *Ledger) Update(fn func(*Tx) error) error {
	if err := l.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx}) }); err != nil {
		return fmt.Errorf("gateway: ledger: %w", err)
	}
	return nil
}

func get[T any](tx *bolt.Tx, bucket []byte, key string) (T, bool, error) {
	var v T
	b := tx.Bucket(bucket)
	if b == nil {
		return v, false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return v, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("gateway: ledger record %q: %w", key, err)
	}
	return v, true, nil
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), raw)
}

// Entry returns the sale or refund stored under key.
func (t *Tx) Entry(key string) (Entry, bool, error) { return get[Entry](t.tx, bucketLedger, key) }

// PutEntry stores e under e.Key and keeps the batch indexes in step: a changed batch
// or created_at moves the entry's index key.
func (t *Tx) PutEntry(e Entry) error {
	old, ok, err := t.Entry(e.Key)
	if err != nil {
		return err
	}
	nb, nk := indexKey(e)
	if ok {
		if ob, okey := indexKey(old); !bytes.Equal(okey, nk) || !bytes.Equal(ob, nb) {
			if err := t.tx.Bucket(ob).Delete(okey); err != nil {
				return err
			}
		}
	}
	if err := t.tx.Bucket(nb).Put(nk, nil); err != nil {
		return err
	}
	return put(t.tx, bucketLedger, e.Key, e)
}

// indexKey returns the index bucket and key of e.
func indexKey(e Entry) (bucket, key []byte) {
	if e.Batch != "" {
		return bucketByBatch, batchPrefix(e.Device, e.Batch, e.Key)
	}
	return bucketByCreated, createdKey(e.Device, e.CreatedAt, e.Key)
}

// batchPrefix is device 0x00 batch 0x00 key. Device ids and keys never hold 0x00.
func batchPrefix(device, batch, key string) []byte {
	k := make([]byte, 0, len(device)+len(batch)+len(key)+2)
	k = append(append(k, device...), 0)
	k = append(append(k, batch...), 0)
	return append(k, key...)
}

// createdKey is device 0x00, then t as 8 bytes of Unix seconds with the sign bit
// flipped and 4 bytes of nanoseconds, big-endian (so byte order is time order, before
// 1970 too), then key.
func createdKey(device string, t time.Time, key string) []byte {
	k := make([]byte, 0, len(device)+13+len(key))
	k = append(append(k, device...), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(t.Unix())^(1<<63))
	k = binary.BigEndian.AppendUint32(k, uint32(t.Nanosecond()))
	return append(k, key...)
}

// buildIndexes creates the batch indexes of a ledger written by an older posgw, in
// the open transaction. A ledger that has them is left alone.
func buildIndexes(tx *bolt.Tx) error {
	if tx.Bucket(bucketByBatch) != nil && tx.Bucket(bucketByCreated) != nil {
		return nil
	}
	for _, name := range [][]byte{bucketByBatch, bucketByCreated} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return forEach(tx, func(e Entry) error {
		b, k := indexKey(e)
		return tx.Bucket(b).Put(k, nil)
	})
}

// ForBatch calls fn for every sale and refund of device that belongs to batch:
// those whose request named it, and those without a batch created (device clock) in
// [opened, closed). It reads two index ranges, not the ledger.
func (t *Tx) ForBatch(device, batch string, opened, closed time.Time, fn func(Entry) error) error {
	byBatch, byCreated := t.tx.Bucket(bucketByBatch), t.tx.Bucket(bucketByCreated)
	if byBatch == nil || byCreated == nil {
		return errors.New("gateway: ledger has no batch index (it is built when the ledger is opened writable)")
	}
	each := func(key []byte, keep func(Entry) bool) error {
		e, ok, err := t.Entry(string(key))
		if err != nil || !ok || e.Device != device || !keep(e) {
			return err // a stale index key (never written so) is skipped
		}
		return fn(e)
	}
	prefix := batchPrefix(device, batch, "")
	c := byBatch.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if err := each(k[len(prefix):], func(e Entry) bool { return e.Batch == batch }); err != nil {
			return err
		}
	}
	lo, hi := createdKey(device, opened, ""), createdKey(device, closed, "")
	c = byCreated.Cursor()
	for k, _ := c.Seek(lo); k != nil && bytes.Compare(k, hi) < 0; k, _ = c.Next() {
		inWindow := func(e Entry) bool {
			return e.Batch == "" && !e.CreatedAt.Before(opened) && e.CreatedAt.Before(closed)
		}
		if err := each(k[len(lo):], inWindow); err != nil {
			return err
		}
	}
	return nil
}

// Attempt returns the audit record stored under key.
func (t *Tx) Attempt(key string) (Attempt, bool, error) {
	return get[Attempt](t.tx, bucketAttempts, key)
}

// PutAttempt stores a.
func (t *Tx) PutAttempt(a Attempt) error { return put(t.tx, bucketAttempts, a.Key, a) }

// Batch returns the batch stored under key.
func (t *Tx) Batch(key string) (Batch, bool, error) { return get[Batch](t.tx, bucketBatches, key) }

// PutBatch stores b.
func (t *Tx) PutBatch(b Batch) error { return put(t.tx, bucketBatches, b.Key, b) }

// ForEach calls fn for every sale and refund in key order.
func (t *Tx) ForEach(fn func(Entry) error) error { return forEach(t.tx, fn) }

func forEach(tx *bolt.Tx, fn func(Entry) error) error {
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
}

// Decide returns the stored entry for key, or stores and returns decide()'s entry when
// the key is new. It reports whether the key was seen before. Deciding and storing
// happen in one transaction, so a key is decided exactly once.
func (l *Ledger) Decide(key string, decide func() Entry) (Entry, bool, error) {
	var (
		out  Entry
		seen bool
	)
	err := l.Update(func(tx *Tx) error {
		e, ok, err := tx.Entry(key)
		if err != nil {
			return err
		}
		if ok {
			out, seen = e, true
		} else {
			out = decide()
		}
		out.Requests++
		return tx.PutEntry(out)
	})
	return out, seen, err
}

// ForEach calls fn for every sale and refund in key order (keys are time-ordered
// UUIDv7).
func (l *Ledger) ForEach(fn func(Entry) error) error {
	return l.db.View(func(tx *bolt.Tx) error { return forEach(tx, fn) })
}

// ForEachAttempt calls fn for every audit record in key order.
func (l *Ledger) ForEachAttempt(fn func(Attempt) error) error {
	return forEachIn(l.db, bucketAttempts, fn)
}

// ForEachBatch calls fn for every batch in key order.
func (l *Ledger) ForEachBatch(fn func(Batch) error) error {
	return forEachIn(l.db, bucketBatches, fn)
}

func forEachIn[T any](db *bolt.DB, bucket []byte, fn func(T) error) error {
	return db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("gateway: ledger record %q: %w", k, err)
			}
			return fn(x)
		})
	})
}

// Total is one device's approved business in one currency.
type Total struct {
	Device       string `json:"device"`
	Currency     string `json:"currency"`
	SalesCount   int64  `json:"sales_count"`   // approved, not reversed
	SalesMinor   int64  `json:"sales_minor"`   // their amount
	RefundsCount int64  `json:"refunds_count"` // approved refunds
	RefundsMinor int64  `json:"refunds_minor"`
	NetMinor     int64  `json:"net_minor"` // sales minus refunds
	Declined     int64  `json:"declined"`  // declined sales (count)
	Reversed     int64  `json:"reversed"`  // reversed sales (count)
}

// Totals sums the ledger per device and currency, sorted by device then currency.
func (l *Ledger) Totals() ([]Total, error) {
	m := map[[2]string]*Total{}
	err := l.ForEach(func(e Entry) error {
		k := [2]string{e.Device, e.Currency}
		t := m[k]
		if t == nil {
			t = &Total{Device: e.Device, Currency: e.Currency}
			m[k] = t
		}
		switch {
		case e.IsSale() && e.Status == "approved":
			t.SalesCount++
			t.SalesMinor += e.AmountMinor
		case e.IsSale() && e.Status == "declined":
			t.Declined++
		case e.IsSale() && e.Status == "reversed":
			t.Reversed++
		case !e.IsSale() && e.Status == "approved":
			t.RefundsCount++
			t.RefundsMinor += e.AmountMinor
		}
		t.NetMinor = t.SalesMinor - t.RefundsMinor
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Total, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return out[i].Device < out[j].Device
		}
		return out[i].Currency < out[j].Currency
	})
	return out, nil
}
