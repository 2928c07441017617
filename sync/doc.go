// Package sync is the terminal's link to the cloud over MQTT (paho.mqtt.golang) and the
// wire contract shared with posgw: topic names and versioned JSON payloads for every
// message kind (payment, query, reversal, refund, attempt, batch), results, the
// retained status and the heartbeat.
//
// The device side (Link) drains the durable outbox in FIFO order with a bounded
// in-flight window at QoS 1. An outbox entry is finished only when the cloud's result
// for its kind and idempotency key arrives (a PUBACK only means the broker took it);
// until then it is resent after ResendAfter and on every reconnect, and the cloud
// deduplicates by key. When the Outbox also implements Acker, the link marks answered
// entries synced itself, off its loop, many per call (one bbolt transaction for all
// that were answered during the previous one).
//
// The link owns its reconnects: exponential backoff with ±25% jitter, a persistent
// session for the device (CleanSession=false, stable client id; the cloud's clients
// ask for a clean one, see Client.CleanSession), the result subscription made again on
// every connect, a retained birth and a retained last will on the same topic carrying a
// session counter, and a heartbeat with queue depth, oldest unsynced age and the health
// reported by Config.Health. Every wait for the broker is bounded by Config.Timeout.
// TLS and mutual TLS come from Config.TLS or the CAFile/CertFile/KeyFile names.
//
// docs/protocol.md is the human-readable form of this contract.
//
// # Caveats
//
// The folder shadows the standard library's sync: import that one as stdsync.
// paho drops QoS 0 messages while reconnecting, so nothing that matters uses QoS 0.
// paho reads packet headers one byte per system call; OpenConnection dials through a
// read buffer instead (tcp and TLS schemes; websockets keep paho's own dialer).
// Results are matched to entries sent during this process's life: a result that
// arrives for an entry the link has not sent since it started is still given to
// OnResult(s), but only the owner of the outbox can finish that entry.
package sync
