// Package api is posd's local HTTP API, used by the clerk's touch page and by cash
// registers (ECR): start a sale, follow it, cancel it, and read the terminal's status.
// Every answer is JSON; every error is {"error": "..."} with a 4xx or 5xx status.
//
// # Caveats
//
// The API has no authentication: it listens on loopback by default and must only be
// exposed to the shop's own network with that in mind.
package api
