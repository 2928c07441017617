// Package api is posd's local HTTP API, used by the clerk's touch page and by cash
// registers (ECR): start a sale (customer- or merchant-presented), hand it a code read
// by the register's own scanner, follow it, cancel it, refund it, read and close the
// settlement batch with its Z report, and read the terminal's status. Every answer is
// JSON (the Z report also as text); every error is {"error": "..."} with a 4xx or 5xx
// status. Request bodies are decoded strictly: size-limited, unknown fields and
// trailing data rejected. docs/sales.md is the reference.
//
// # Caveats
//
// The API has no authentication: it listens on loopback by default and must only be
// exposed to the shop's own network with that in mind.
package api
