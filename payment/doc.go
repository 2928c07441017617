// Package payment is the sale engine. One goroutine (Engine.Run) owns every sale's
// state; the local API, the scanner and the cloud link talk to it through methods that
// hand requests to that goroutine.
//
// Two flows: customer-presented (Create, then Scan with the customer's code) and
// merchant-presented (Present builds a dynamic EMVCo QR with the amount and the sale's
// reference from Config.MerchantCode; the cloud's result is the paid notification).
//
// A sale moves created (waiting_for_code) → code scanned and identified → committed to
// the store together with its outbox entry → authorizing → approved | declined |
// in_doubt | stored_offline. Nothing reaches the network before the commit: the sync
// link only reads committed outbox entries. Every state change is one store
// transaction that writes the sale, the outbox entries it owes the cloud, the in-doubt
// index and the batch totals together, so a crash at any point leaves a state the
// engine resumes from (see TestKilledInState). Amounts are int64 minor units of an ISO
// 4217 currency; sums are overflow-checked.
//
// In doubt: a sale without a result after Config.AuthTimeout becomes in_doubt and a
// status query (kind "query") is queued; the payment request stays queued with the
// same key, so a late answer still settles it. When the query answers "unknown" or
// nothing settles the sale within Config.QueryTimeout, the scheme's offline policy
// decides: defer (within limits) makes it stored_offline; otherwise the payment
// request is withdrawn, a durable reversal (kind "reversal") is queued and the clerk is
// told the sale did not go through.
//
// Offline: when the link is down at scan time the scheme's OfflinePolicy refuses
// ("offline — ask for another method") or defers within per-sale, outstanding-total,
// count and age limits, checked on the engine goroutine against counters rebuilt from
// the store and committed in the same transaction as the sale. Declined-locally,
// refused and cancelled sales are recorded for audit (kind "attempt"). A one-time code
// seen again within Config.CodeReuseWindow is refused with ErrCodeReused.
//
// Refunds are their own records with their own keys (kind "refund"); pending and
// approved refunds never exceed the original. Settlement batches keep running totals
// per scheme and currency, updated with each approval; CloseBatch queues them (kind
// "batch") and ZReport renders them.
//
// Batch membership is fixed when a sale or refund is created: it belongs to the batch
// open then (BatchID), and its requests carry that id so the cloud reconciles a batch
// by the same rule. A sale is counted in its batch when approved, or already when it
// is stored offline (the merchant accepted it; a later decline takes it out again
// while the batch is open). CloseBatch therefore refuses (ErrBatchBusy) while a sale of
// the open batch waits for a code, authorizes or is in doubt, or a refund of it waits
// for its answer; the timeouts bound the sales, the clerk can cancel a waiting sale.
//
// # Caveats
//
//   - The merchant-presented flow (Present) takes the cloud's result for the sale's
//     key as its paid notification; Config.Presented hands the QR to the printer.
//   - A refund that the cloud never answers stays pending; there is no refund query.
//   - A pending refund has no timeout: while the terminal is offline it holds its
//     batch's close until the cloud answers.
//   - A sale stored offline that the cloud declines after its batch closed stays in
//     that batch's totals; the cloud reports the batch mismatched (the merchant's
//     offline risk, made visible).
//   - The exposure limits of stored_offline sales are across all schemes per currency.
//   - Pruning deletes final, synced sales only; refunds and batches are kept.
//   - Only one sale waits for a code at a time: the counter has one scanner.
//   - ClockUnsynced flags records made before the clock was synchronized; their wall
//     times are not corrected later. Order is the true sequence.
package payment
