package gateway

import (
	"context"
	"time"

	wsync "github.com/walletless/walletless/sync"
)

// LedgerTx is one write transaction of a ledger: what the decision rules (Local)
// read and write. Everything written through it commits together or not at all.
type LedgerTx interface {
	// Entry returns the sale or refund stored under key.
	Entry(key string) (Entry, bool, error)
	// PutEntry stores e under e.Key (a new key or a change to a stored entry) and
	// keeps the per-device and per-batch indexes in step.
	PutEntry(e Entry) error
	// Attempt returns the audit record stored under key.
	Attempt(key string) (Attempt, bool, error)
	// PutAttempt stores a new audit record.
	PutAttempt(a Attempt) error
	// Batch returns the batch close stored under key.
	Batch(key string) (Batch, bool, error)
	// PutBatch stores a new batch close.
	PutBatch(b Batch) error
	// ForBatch calls fn for every sale and refund of device that belongs to batch:
	// those whose request named it, and those without a batch created (device
	// clock) in [opened, closed).
	ForBatch(device, batch string, opened, closed time.Time, fn func(Entry) error) error
}

// LedgerReader reads a whole ledger: what posgw ledger lists and exports.
type LedgerReader interface {
	// ForEach calls fn for every sale and refund in key order.
	ForEach(fn func(Entry) error) error
	// ForEachAttempt calls fn for every audit record in key order.
	ForEachAttempt(fn func(Attempt) error) error
	// ForEachBatch calls fn for every batch close in key order.
	ForEachBatch(fn func(Batch) error) error
	// Totals sums the ledger per device and currency, sorted by device then currency.
	Totals() ([]Total, error)
}

// Store is a ledger the decision rules run on: *Ledger (bbolt, one process) or
// *PGLedger (PostgreSQL, any number of posgw processes).
type Store interface {
	LedgerReader
	// Transact runs fn in one write transaction and commits it when fn returns nil.
	// fn may run more than once (a PostgreSQL transaction that lost a race for a key
	// or a connection is run again from the start), so it must not keep state
	// between runs; only the run that committed counts.
	Transact(ctx context.Context, fn func(LedgerTx) error) error
	Close() error
}

// Transact runs fn in one bbolt write transaction (see Update); bbolt serializes
// writers, so fn runs once.
func (l *Ledger) Transact(_ context.Context, fn func(LedgerTx) error) error {
	return l.Update(func(tx *Tx) error { return fn(tx) })
}

var (
	_ Store = (*Ledger)(nil)
	_ Store = (*PGLedger)(nil)
)

// KeyLocker is a LedgerTx that can lock keys for the rest of its transaction before
// reading them. Local locks every key a batch touches (each message's key and a
// refund's original sale) at the start of the transaction, all at once, in one global
// order: concurrent batches of several processes then wait for each other instead of
// deadlocking, and the second decider of a key reads the first one's decision. The
// unique key of the ledger still decides; the locks only order the work.
type KeyLocker interface {
	LockKeys(keys []string) error
}

// lockKeys returns the keys a batch reads or writes.
func lockKeys(msgs []Message) []string {
	keys := make([]string, 0, len(msgs)+1)
	for _, m := range msgs {
		keys = append(keys, m.Key)
		if r, ok := m.Msg.(*wsync.RefundRequest); ok {
			keys = append(keys, r.OriginalKey)
		}
	}
	return keys
}
