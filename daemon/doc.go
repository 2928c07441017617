// Package daemon wires posd together: it builds every part from a config.Config and
// runs them under one errgroup — the store, the sale engine, the scanner, the receipt
// printer, the MQTT link and the local API, plus, in demo mode, an embedded MQTT broker
// and an in-process posgw. It is the only package that imports all the others. A
// cancelled context is a clean stop, not an error.
package daemon
