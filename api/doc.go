// Package api is posd's local HTTP API, used by the clerk's touch page and by cash
// registers (ECR): start a sale (customer- or merchant-presented), hand it a code read
// by the register's own scanner, follow it, cancel it, refund it, read and close the
// settlement batch with its Z report, and read the terminal's status. Every answer is
// JSON (the Z report also as text); every error is {"error": "..."} with a 4xx or 5xx
// status. Request bodies are decoded strictly: size-limited; unknown fields, duplicate
// keys, field names in another letter case and trailing data rejected. docs/sales.md is
// the reference.
//
// Every request passes a guard first (guard.go): a bearer token from package auth
// (401; clerk or manager role, 403), Host and Origin checks against DNS rebinding and
// cross-site requests (421, 403), Content-Type: application/json on every request
// that changes state (415), a slowdown after repeated bad tokens from one address
// (429), 503 while posd stops, and a recover that turns a handler's panic into a 500.
// docs/security.md ("The local API") explains the whole door.
//
// # Caveats
//
// The slowdown is per remote address: on loopback every local process shares one, so
// a process guessing tokens also delays the register for up to a minute at a time.
package api
