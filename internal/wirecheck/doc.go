// Package wirecheck validates, in tests, every message published under
// walletless/v1/devices/ against the contract's JSON Schemas (package docs/schema).
// A test harness that starts a broker calls Watch once; the watcher subscribes to
// walletless/v1/devices/# and, when the test ends, fails it for every payload that does
// not match its topic's schema. So posd, posgw and any test cloud are held to the
// document in every test that runs a broker, and document and wire cannot drift.
//
// # Caveats
//
// The watcher is an ordinary MQTT client: it sees what the broker delivered to it
// after its subscription was made, and misses what was published while it was
// reconnecting after a broker restart (a persistent session covers brokers with
// persistence). A test that publishes invalid payloads on purpose marks them with
// Exempt.
package wirecheck
