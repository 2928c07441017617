package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	stdsync "sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// KeyTTL is how long an Idempotency-Key answer and an ecr_ref → sale link are kept:
// a register retrying within this time gets the first answer; after it the key is
// forgotten and may be used again.
const KeyTTL = 7 * 24 * time.Hour

var (
	bucketIdem    = []byte("idempotency") // scope + key → storedAnswer
	bucketECR     = []byte("ecr_ref")     // ecr_ref → ecrLink
	bucketECRSale = []byte("ecr_by_sale") // sale id → ecr_ref
)

// Keys is the durable record of Idempotency-Key answers and ecr_ref links, in its own
// bbolt file (registers.db in the data directory), so a retry after a restart of posd
// still meets the first answer.
type Keys struct {
	db  *bolt.DB
	now func() time.Time
}

// storedAnswer is the first answer to a POST with an Idempotency-Key. Pending is set
// while the request runs: found after a restart, it means the first attempt's outcome
// is unknown, and the retry is told so (409) rather than run twice.
type storedAnswer struct {
	At       time.Time `json:"at"`
	BodyHash []byte    `json:"body_sha256"`
	Pending  bool      `json:"pending,omitempty"`
	Code     int       `json:"code,omitempty"`
	Location string    `json:"location,omitempty"`
	Body     []byte    `json:"body,omitempty"`
}

// ecrLink ties a register's reference to the sale it created.
type ecrLink struct {
	At      time.Time `json:"at"`
	SaleID  string    `json:"sale_id,omitempty"`
	Pending bool      `json:"pending,omitempty"`
}

// OpenKeys opens (or makes) the key file at path and drops keys older than KeyTTL.
func OpenKeys(path string) (*Keys, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("api: keys: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIdem, bucketECR, bucketECRSale} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("api: keys: %w", err)
	}
	k := &Keys{db: db, now: time.Now}
	if err := k.Prune(); err != nil {
		db.Close()
		return nil, err
	}
	return k, nil
}

// Close closes the file.
func (k *Keys) Close() error { return k.db.Close() }

// Run prunes expired keys every hour until ctx is done.
func (k *Keys) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := k.Prune(); err != nil {
				return err
			}
		}
	}
}

// Prune drops keys and links older than KeyTTL.
func (k *Keys) Prune() error {
	cutoff := k.now().Add(-KeyTTL)
	err := k.db.Update(func(tx *bolt.Tx) error {
		var a storedAnswer
		if err := pruneBucket(tx.Bucket(bucketIdem), func(v []byte) time.Time {
			a = storedAnswer{}
			_ = json.Unmarshal(v, &a)
			return a.At
		}, cutoff, nil); err != nil {
			return err
		}
		var l ecrLink
		return pruneBucket(tx.Bucket(bucketECR), func(v []byte) time.Time {
			l = ecrLink{}
			_ = json.Unmarshal(v, &l)
			return l.At
		}, cutoff, func(v []byte) error {
			var l ecrLink
			if json.Unmarshal(v, &l) == nil && l.SaleID != "" {
				return tx.Bucket(bucketECRSale).Delete([]byte(l.SaleID))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("api: keys: prune: %w", err)
	}
	return nil
}

func pruneBucket(b *bolt.Bucket, at func([]byte) time.Time, cutoff time.Time, also func([]byte) error) error {
	var old [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if at(v).Before(cutoff) {
			old = append(old, append([]byte(nil), k...))
			if also != nil {
				return also(v)
			}
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
	return nil
}

var errNoKey = errors.New("api: no such key")

func (k *Keys) get(bucket []byte, key string, v any) error {
	return k.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucket).Get([]byte(key))
		if raw == nil {
			return errNoKey
		}
		return json.Unmarshal(raw, v)
	})
}

func (k *Keys) put(bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return k.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), raw) })
}

func (k *Keys) del(bucket []byte, key string) error {
	return k.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) })
}

// link records ref → saleID and the way back.
func (k *Keys) link(ref, saleID string) error {
	raw, err := json.Marshal(ecrLink{At: k.now().UTC(), SaleID: saleID})
	if err != nil {
		return err
	}
	return k.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketECR).Put([]byte(ref), raw); err != nil {
			return err
		}
		return tx.Bucket(bucketECRSale).Put([]byte(saleID), []byte(ref))
	})
}

// refFor returns the ecr_ref of a sale, or "".
func (k *Keys) refFor(saleID string) string {
	var ref string
	_ = k.db.View(func(tx *bolt.Tx) error {
		ref = string(tx.Bucket(bucketECRSale).Get([]byte(saleID)))
		return nil
	})
	return ref
}

// keyLocks serialises requests that share a key, so two concurrent retries cannot
// both run.
type keyLocks struct {
	mu    stdsync.Mutex
	locks map[string]*keyLock // guarded by mu
}

type keyLock struct {
	mu   stdsync.Mutex
	refs int
}

// lock takes the key's lock and returns its release.
func (l *keyLocks) lock(key string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*keyLock{}
	}
	kl, ok := l.locks[key]
	if !ok {
		kl = &keyLock{}
		l.locks[key] = kl
	}
	kl.refs++
	l.mu.Unlock()
	kl.mu.Lock()
	return func() {
		kl.mu.Unlock()
		l.mu.Lock()
		kl.refs--
		if kl.refs == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
}
