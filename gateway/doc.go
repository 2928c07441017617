// Package gateway is posgw, the reference cloud end of the Walletless MQTT contract
// (docs/protocol.md). It receives every kind of device message (payment requests,
// status queries, reversals, refunds, attempt records, batch closes) through shared
// subscriptions, applies them to its ledger (a bbolt file, or PostgreSQL shared by any
// number of posgw processes) with dedup by idempotency key, and publishes each answer
// to the device's result topic.
//
// Messages that arrive together are applied in one ledger transaction (one fsync),
// and answered only after it committed: a result the device sees is always durable.
//
// The decision rules stand in for a real acquirer or wallet operator:
//   - the currency must be a known ISO 4217 code and the scheme non-empty;
//   - the amount must not exceed the per-currency limit (Rules.Limits, default
//     DefaultLimits; a currency without a limit is declined);
//   - a key seen before is answered with the stored result, never decided again;
//   - a reversal voids an approved sale, and a key reversed before its request arrived
//     stays reversed (the late request is answered "reversed");
//   - refunds reference an approved, unreversed sale of the same device and currency
//     and together never exceed its amount;
//   - a batch close is compared with the ledger's own totals for the batch: the
//     device's approved sales and refunds whose request named that batch, and, for
//     entries without a batch (older devices), those created in [opened_at,
//     closed_at). An entry keeps the batch of its first request.
//
// On bbolt, reconciliation reads two index buckets, not the ledger: one keyed by device, batch
// and key for entries that name a batch, one keyed by device and created_at for
// entries that do not. PutEntry keeps them in the same transaction as the entry; a
// ledger written before they existed gets them when it is opened writable (one
// transaction over the whole ledger, once).
//
// The ledger work sits behind Applier: "apply this batch of device messages in one
// transaction and return each answer". Local is the decision rules on a Store, the
// ledger: *Ledger (bbolt, this process) or *PGLedger (PostgreSQL, shared). The rules
// read and write through LedgerTx, one transaction of either.
//
// # One process, one bbolt file
//
// The bbolt ledger is one file and bbolt allows one process per file: a second posgw
// on the same data directory fails fast with ErrLocked. Gateways share one Ledger
// safely inside one process (posgw -instances N): bbolt serializes the write
// transactions and each key is looked up and decided inside one.
//
// # Many processes, one PostgreSQL
//
// PGLedger keeps entries, attempts and batch closes in tables (schema in
// migrations/*.sql, embedded, applied by Migrate and recorded in schema_migrations;
// OpenPG refuses a database at another version). Each Transact is one READ COMMITTED
// transaction. The entry's primary key decides a key once: a transaction that inserts
// a key another one committed first fails with unique_violation and is run again from
// the start, and then reads the stored decision and answers it. To make that rare and
// to keep concurrent batches from deadlocking, Local first locks every key of the
// batch (KeyLocker: advisory transaction locks in the order of the keys' 64-bit
// hashes, the same order in every process); rows it changes are read FOR UPDATE.
// Deadlocks and serialization failures are run again at once (a bounded number of
// times); a lost connection, a database that is down, restarting or read-only (a
// standby after failover) is waited for with backoff and jitter for as long as the
// caller's context lasts, and nothing is answered meanwhile.
//
// # Acknowledgements and sessions
//
// The gateway acknowledges an MQTT request (PUBACK) only after the transaction
// storing its answer committed, never before; a message that cannot be parsed is
// acknowledged and dropped. When the ledger fails a batch (a bbolt error, or a value
// PostgreSQL refuses), the gateway reconnects after a backoff, so that the requests it
// left unacknowledged do not fill the broker's in-flight window for it. The session is
// always clean, on both ledgers: the broker queues nothing for an absent worker, and
// unacknowledged requests reach the live workers through the devices' resends
// (docs/protocol.md, "The cloud's session").
//
// # Caveats
//
// PostgreSQL keeps times to the microsecond; Local truncates its decision times to
// the microsecond on both ledgers so a replay answers the same decided_at. A device's
// created_at is stored to the microsecond too, which only matters for the created_at
// window of entries without a batch (older devices).
//
// A batch close is reconciled against the ledger as it stands when the close arrives.
// Devices send a batch's requests before its close, but a request that reaches the
// ledger after the close (a resend handed to another instance) is not counted, and
// the stored answer stays "declined".
package gateway
