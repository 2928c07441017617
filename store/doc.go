// Package store keeps the terminal's durable state in one bbolt file: sales, the
// outbox of messages still owed to the cloud, and meta data (schema version, session
// counter). A sale and its outbox entry are written in one fsynced transaction, so a
// sale the API acknowledged survives a crash or a power cut.
//
// The store holds opaque JSON documents; the sale engine (package payment) owns their
// meaning. Outbox keys are big-endian sequence numbers, so iteration is FIFO.
//
// # Caveats
//
// bbolt takes an exclusive file lock: a second process fails after Options.Timeout with
// ErrLocked instead of hanging. posctl must read through posd's local API, never by
// opening the file while posd runs. Byte slices returned by the store are copies and
// stay valid after the transaction.
package store
