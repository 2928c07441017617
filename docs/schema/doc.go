// Package schema holds the JSON Schemas (draft 2020-12) of the Walletless MQTT
// contract, one per payload under v1/, and validates payloads against them by name or
// by topic. The schemas are the machine-readable form of docs/protocol.md; tests
// validate every message posd and posgw publish against them (internal/wirecheck), and
// `posctl conformance` validates every answer a cloud sends.
//
// # Caveats
//
// The package lives next to the schema files because go:embed cannot reach outside
// its own directory; it imports nothing of ours.
package schema
