// Package payment is the sale engine. One goroutine (Engine.Run) owns every sale's
// state; the local API, the scanner and the cloud link talk to it through methods that
// hand requests to that goroutine.
//
// A sale moves created (waiting_for_code) → code scanned and identified → committed to
// the store together with its outbox entry → authorizing → approved | declined |
// in_doubt. Nothing reaches the network before the commit: the sync link only reads
// committed outbox entries. Amounts are int64 minor units of an ISO 4217 currency.
//
// # Caveats
//
// A sale left without a result for Config.AuthTimeout becomes in_doubt. Its request
// stays in the outbox and is resent with the same idempotency key, so a late result
// still settles it; the status-query and reversal flow for in-doubt sales is not built
// yet. Only one sale waits for a code at a time: the counter has one scanner.
package payment
