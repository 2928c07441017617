// Package fleet is the device side and the wire contract of fleet configuration: a
// fleet manager signs a config document with minisign (ed25519) and publishes it,
// retained, on a slot topic (all, a group, or one device); posd verifies it against
// the keys it already trusts, checks its target, time window and version, merges the
// slots into its effective configuration and reports what became of it.
//
// The contract (topics, [Envelope], [Document], [Report], [Sign], [Verify]) is what
// posfleet imports; [Agent] is the device's state machine, independent of MQTT: it is
// given the messages of the slot topics and a Publish function, and it calls the
// daemon's Validate and Apply. Its state (the document held on each slot, the current
// version, the last [HistorySize] applied documents) is a JSON file written atomically
// (temporary file, fsync, rename, fsync of the directory), so a restart keeps it and a
// replay after a restart is still refused.
//
// # Caveats
//
// Versions are global to a fleet: a device accepts a document only when its version
// is above every version it accepted before, whatever the slot. An empty retained
// payload clears a slot (the document is no longer held and leaves the next merge) but
// does not change the applied configuration until a new document arrives. A document
// that failed and was rolled back (500) uses up its version: the manager pushes a new
// one.
package fleet
