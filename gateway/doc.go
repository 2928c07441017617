// Package gateway is posgw, the reference cloud end of the Walletless MQTT contract
// (docs/protocol.md). It receives payment requests from every device through a shared
// subscription, deduplicates them by idempotency key in its own bbolt ledger, decides
// by simple documented rules, and publishes the result to the device.
//
// The decision rules stand in for a real acquirer or wallet operator:
//   - the currency must be a known ISO 4217 code and the scheme non-empty;
//   - the amount must not exceed the per-currency limit (Rules.Limits, default
//     DefaultLimits; a currency without a limit is declined);
//   - a key seen before is answered with the stored result, never decided again.
//
// # Caveats
//
// The ledger is one bbolt file: several posgw instances sharing a subscription must
// share a ledger service instead, which this reference does not provide.
package gateway
