// Package conformance is the Walletless contract's conformance kit: it acts as one or
// two devices against any cloud over MQTT and runs named scenarios (replay, bundles,
// in-doubt queries, every kind of reversal, refunds, cross-device keys, staleness,
// malformed and oversize messages, batch close, a cloud restart), each with a verdict
// and the evidence: every message sent and every answer received. `posctl
// conformance` is its command line; tests run it in-process against posgw.
//
// A scenario checks only what docs/protocol.md requires of every cloud, not posgw's
// own decision rules: sales are small (KRW 1,200, scheme alipay), a declined sale is
// made with the staleness rule, and every answer is validated against the JSON Schemas
// (package docs/schema).
//
// # Caveats
//
// A cloud's silence (a malformed message must not be answered) can only be observed
// for a while: the kit waits until an answer to a later, valid message of the same
// device arrived plus Config.Quiet. The restart scenario needs hooks that stop and
// start the cloud (Config.StopCloud and StartCloud; `-stop-cmd` and `-start-cmd`) and
// is skipped without them. Keys are unique per run, so the kit may run against a
// production cloud's test tenant repeatedly; it leaves its records there.
package conformance
