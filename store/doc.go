// Package store keeps the terminal's durable state in one bbolt file. Buckets: sales,
// outbox (messages still owed to the cloud, big-endian sequence keys so iteration is
// FIFO), unsettled (the in-doubt index: every sale or refund not yet settled and
// synced, so a restart reads only those), refunds, batches (settlement batches with
// running totals), config (configuration documents), codes (hashes of used one-time
// codes) and meta (schema version, session counter, outbox depth, engine counters).
//
// Everything written through one Tx (Store.Update) is committed and fsynced together
// or not at all: a sale and its outbox entry, index and batch totals survive a crash
// or a power cut together. The store holds opaque JSON documents; the sale engine
// (package payment) owns their meaning.
//
// Open migrates older files one schema step per transaction and refuses files from a
// newer version. Before bbolt opens a file, Open checks its meta pages, its length
// (a truncated file) and its freelist page; with Options.Verify (what posd does) it
// reads every page of every bucket itself, offsets checked, then runs bbolt's own
// check. A damaged file is ErrDamaged, whose message names the file and the command
// that salvages it (Salvage: every readable record into a new file). PruneSales walks sales in id order (time order for UUIDv7 ids) so
// pruning by age stops at the first young sale. Compact rewrites the file without free
// pages and renames it atomically over the original.
//
// # Caveats
//
// bbolt takes an exclusive file lock: a second process fails after Options.Timeout with
// ErrLocked instead of hanging. posctl must read through posd's local API, never by
// opening the file while posd runs; `posctl store compact` needs posd stopped. Byte
// slices returned by the store are copies and stay valid after the transaction. The
// file does not shrink by itself after pruning: bbolt reuses free pages, and Compact
// gives the space back.
//
// bbolt trusts its pages: a damaged one makes it panic (index out of range, "invalid
// page type") or fault on its memory map. Every transaction of the store turns such a
// panic, and a fault (debug.SetPanicOnFault), into ErrDamaged for that call; the
// store keeps serving the other records. A panic in the caller's own function is not
// damage and is re-raised. This is a net for damage that appears while the file is
// open, not a guarantee: bbolt can also turn a damaged page into a pointer into the Go
// heap, and writing through it is a fatal error no recover catches; the next Open
// with Verify then refuses the file. bbolt has no checksums of values: a changed byte inside a
// record is not seen by any check. Damage that appears while the file is open and
// makes a cycle of branch pages is not caught until the next Open with Verify (bbolt
// would recurse without end). See docs/operations.md.
package store
