package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Tx is one read or read-write transaction. Everything written through one Tx is
// committed and fsynced together or not at all. A Tx is only valid inside the function
// given to Update or View; byte slices it returns are copies.
type Tx struct {
	tx *bolt.Tx
	s  *Store
}

// Update runs fn in one read-write transaction, committed (and fsynced) when fn
// returns nil and rolled back otherwise. A damaged page met on the way rolls it back
// and returns ErrDamaged (see Store.tx).
func (s *Store) Update(fn func(*Tx) error) error {
	return s.tx(true, func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, s: s}) })
}

// View runs fn in one read-only transaction. A damaged page met on the way returns
// ErrDamaged.
func (s *Store) View(fn func(*Tx) error) error {
	return s.tx(false, func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, s: s}) })
}

// get returns a copy of the value under key in bucket name. Before answering
// ErrNotFound for a record (a sale, refund or batch) it checks the pages on the key's
// path, so a damaged page answers ErrDamaged instead of hiding the record. That costs
// a file open and one read per tree level, only when nothing was found.
func (t *Tx) get(name []byte, key string, record bool) ([]byte, error) {
	b := t.tx.Bucket(name)
	v := b.Get([]byte(key))
	if v == nil {
		if record && t.s != nil {
			if err := t.s.checkKeyPath(uint64(b.Root()), []byte(key)); err != nil {
				return nil, err
			}
		}
		return nil, ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

// Sale returns a copy of the sale document under id, or ErrNotFound.
func (t *Tx) Sale(id string) ([]byte, error) { return t.get(bucketSales, id, true) }

// appendFill is the page fill for buckets whose keys mostly grow (time-ordered sale
// ids, sequence numbers): full pages instead of bbolt's default half-full splits.
const appendFill = 0.9

func (t *Tx) appendBucket(name []byte) *bolt.Bucket {
	b := t.tx.Bucket(name)
	b.FillPercent = appendFill
	return b
}

// PutSale writes the sale document under id.
func (t *Tx) PutSale(id string, doc []byte) error {
	return t.appendBucket(bucketSales).Put([]byte(id), doc)
}

// NextOrder returns the next value of the persistent, strictly increasing record
// counter: the terminal's own order of events, independent of the wall clock.
func (t *Tx) NextOrder() (uint64, error) {
	return t.tx.Bucket(bucketSales).NextSequence()
}

// Enqueue appends data to the outbox and returns its sequence number.
func (t *Tx) Enqueue(data []byte) (uint64, error) {
	b := t.appendBucket(bucketOutbox)
	n, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := b.Put(seqKey(n), data); err != nil {
		return 0, err
	}
	return n, t.addDepth(1)
}

// Dequeue removes outbox entry seq; zero or an unknown seq is ignored.
func (t *Tx) Dequeue(seq uint64) error {
	if seq == 0 {
		return nil
	}
	b := t.tx.Bucket(bucketOutbox)
	if b.Get(seqKey(seq)) == nil {
		return nil
	}
	if err := b.Delete(seqKey(seq)); err != nil {
		return err
	}
	return t.addDepth(-1)
}

// addDepth keeps the outbox depth counter, so reading the depth never walks the
// outbox.
func (t *Tx) addDepth(d int64) error {
	m := t.tx.Bucket(bucketMeta)
	var n int64
	if v := m.Get(keyDepth); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += d
	if n < 0 {
		n = 0
	}
	return m.Put(keyDepth, seqKey(uint64(n)))
}

// Queued reports whether outbox entry seq is still waiting.
func (t *Tx) Queued(seq uint64) bool {
	return seq != 0 && t.tx.Bucket(bucketOutbox).Get(seqKey(seq)) != nil
}

// SetUnsettled adds id to the in-doubt index with a short note (its status), or
// removes it when note is "". The index is what a restart reloads, so recovery reads
// only what is unfinished, never every sale.
func (t *Tx) SetUnsettled(id, note string) error {
	b := t.tx.Bucket(bucketUnsettled)
	if note == "" {
		return b.Delete([]byte(id))
	}
	return b.Put([]byte(id), []byte(note))
}

// ForEachUnsettled calls fn for every id in the in-doubt index, in id order.
func (t *Tx) ForEachUnsettled(fn func(id, note string) error) error {
	return t.tx.Bucket(bucketUnsettled).ForEach(func(k, v []byte) error { return fn(string(k), string(v)) })
}

// Refund returns a copy of the refund document under id, or ErrNotFound.
func (t *Tx) Refund(id string) ([]byte, error) { return t.get(bucketRefunds, id, true) }

// PutRefund writes the refund document under id.
func (t *Tx) PutRefund(id string, doc []byte) error {
	return t.appendBucket(bucketRefunds).Put([]byte(id), doc)
}

// Batch returns a copy of the batch document under id, or ErrNotFound.
func (t *Tx) Batch(id string) ([]byte, error) { return t.get(bucketBatches, id, true) }

// PutBatch writes the batch document under id.
func (t *Tx) PutBatch(id string, doc []byte) error {
	return t.tx.Bucket(bucketBatches).Put([]byte(id), doc)
}

// ForEachBatch calls fn with every batch document in id order.
func (t *Tx) ForEachBatch(fn func(id string, doc []byte) error) error {
	return t.tx.Bucket(bucketBatches).ForEach(func(k, v []byte) error {
		return fn(string(k), append([]byte(nil), v...))
	})
}

// Meta returns a copy of the meta value under key, or ErrNotFound.
func (t *Tx) Meta(key string) ([]byte, error) { return t.get(bucketMeta, key, false) }

// PutMeta writes a meta value. The keys schema_version and session are reserved.
func (t *Tx) PutMeta(key string, v []byte) error {
	if key == string(keySchema) || key == string(keySession) || key == string(keyDepth) {
		return fmt.Errorf("store: meta key %q is reserved", key)
	}
	return t.tx.Bucket(bucketMeta).Put([]byte(key), v)
}

// CodeSeen returns when the one-time code with this hash was first used, if it was.
func (t *Tx) CodeSeen(hash []byte) (time.Time, bool) {
	v := t.tx.Bucket(bucketCodes).Get(hash)
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v))), true
}

// PutCode records that the one-time code with this hash was used at at.
func (t *Tx) PutCode(hash []byte, at time.Time) error {
	return t.tx.Bucket(bucketCodes).Put(hash, seqKey(uint64(at.UnixMilli())))
}

// Config returns a copy of the stored configuration document under key.
func (t *Tx) Config(key string) ([]byte, error) { return t.get(bucketConfig, key, false) }

// PutConfig stores a configuration document (for example the last good pushed
// configuration) under key.
func (t *Tx) PutConfig(key string, doc []byte) error {
	return t.tx.Bucket(bucketConfig).Put([]byte(key), doc)
}
