// Package sync is the terminal's link to the cloud over MQTT (paho.mqtt.golang) and the
// wire contract shared with posgw: topic names and versioned JSON payloads.
//
// The device side drains the durable outbox in FIFO order with a bounded in-flight
// window at QoS 1. An outbox entry is finished only when the cloud's result for its
// idempotency key arrives (a PUBACK only means the broker took the message); until
// then it is resent after ResendAfter, and the cloud deduplicates by key. The link
// announces itself with a retained birth message and a retained last will on the same
// topic, both carrying a session counter.
//
// docs/protocol.md is the human-readable form of this contract.
//
// # Caveats
//
// The folder shadows the standard library's sync: import that one as stdsync.
// paho drops QoS 0 messages while reconnecting, so nothing that matters uses QoS 0.
package sync
