// Package gateway is posgw, the reference cloud end of the Walletless MQTT contract
// (docs/protocol.md). It receives every kind of device message (payment requests,
// status queries, reversals, refunds, attempt records, batch closes) through shared
// subscriptions, applies them to its own bbolt ledger with dedup by idempotency key,
// and publishes each answer to the device's result topic.
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
//   - a batch close is compared with the ledger's own totals for the device's sales
//     and refunds created in [opened_at, closed_at).
//
// # Caveats
//
// The ledger is one bbolt file and bbolt allows one process per file: a second posgw
// on the same data directory fails fast with ErrLocked. Several Gateways share one
// Ledger safely inside one process (posgw -instances N): bbolt serializes the write
// transactions and each key is looked up and decided inside one, so a resend that the
// broker hands to another instance is answered from the ledger, never decided twice.
// Several posgw processes on different machines, each with its own ledger, would each
// decide a key that reached both (a resend is not sticky to one member of a shared
// subscription): that deployment needs one shared transactional ledger (a SQL database
// with a unique key constraint, for instance), which this reference does not provide.
//
// Batch reconciliation scans the whole ledger; fine for a reference gateway, not for a
// fleet.
package gateway
