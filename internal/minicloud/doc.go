// Package minicloud is a small cloud end of the Walletless MQTT contract, written for
// tests from docs/protocol.md alone (it shares only the payload types and decoders of
// package sync with posgw, not its ledger or rules): an in-memory store, one result
// per message. Its Flaws switch on deliberate deviations, so tests can show that the
// conformance kit catches each one, and OldDocument makes it a cloud written to the
// document before issue 15 (persistent session, no staleness rule, the payment
// request without the offline field), to test compatibility.
//
// # Caveats
//
// Test use only: the store is a map in memory (State survives a Stop and Start in
// one process, which is what the restart scenario needs), and every limit is
// hard-coded.
package minicloud
