// Package daemon wires posd together: it builds every part from a config.Config and
// runs them under one errgroup — the store, the sale engine, the scanner, the receipt
// printer, the MQTT link and the local API, plus, in demo mode, an embedded MQTT broker
// and an in-process posgw. It is the only package that imports all the others. A
// cancelled context is a clean stop, not an error.
//
// The sale path (printer, indicators, receipts, sale engine, MQTT link, the API's
// handlers) is a generation built from the configuration in force. When the fleet
// agent (package fleet) accepts a pushed configuration, or a technician rolls one
// back, the daemon waits for a quiet counter, stops the generation and starts one
// from the new configuration without a restart of posd; new broker settings that do
// not connect within fleet.verify_timeout bring the previous generation back (fleet.go).
//
// # Caveats
//
// For the moment of a swap the local API answers 503 with Retry-After and scans wait.
// The scanner, the API's address and the data directory are read once at start: a
// push may not change them.
package daemon
