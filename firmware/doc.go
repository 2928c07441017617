// Package firmware owns signed firmware updates of posd: the artifact (a .wlf file:
// a minisign-signed manifest naming the version, min_version, arch, board and the
// size and SHA-256 of each payload, followed by the payloads), its streaming
// verification, the A/B slot backends (files: slots a and b and a current link;
// tryboot: Raspberry Pi autoboot.txt), the persisted update state machine with its
// boot-attempt counter, the anti-downgrade floor, HTTP(S) download with Range resume
// and the watched USB directory.
//
// The chain of an update is download → verify → install → switch → verify_new →
// commit, or rollback. Each step is persisted (state.json, written atomically) before
// it acts, and [Machine.Boot], run before every start of posd while no posd runs,
// finishes whatever an interrupted step left, so a device killed in any step comes
// back on a slot that works. The daemon decides when (a quiet counter and an empty
// outbox) and runs the health check; this package knows nothing of sales or MQTT.
//
// # Caveats
//
// Nothing unverified is written to a slot: the manifest's signature is checked
// before any payload is read, each payload is hashed into a staging directory and
// only a fully verified staging directory is renamed into the slot. The tryboot
// backend needs staging space for the whole image before it writes the partition.
// The floor only rises when an update commits; a rollback does not lower it.
package firmware
