// Package gateway is posgw, the reference cloud end of the Walletless MQTT contract
// (docs/protocol.md). It receives every kind of device message (payment requests,
// status queries, reversals, refunds, attempt records, batch closes) through shared
// subscriptions, applies them to its own bbolt ledger with dedup by idempotency key,
// and publishes each answer to the device's result topic.
//
// Messages that arrive together are applied in one ledger transaction (one fsync),
// and answered only after it committed: a result the device sees is always durable.
//
// The decision rules stand in for a real acquirer or wallet operator:
//   - the currency must be a known ISO 4217 code and the scheme non-empty;
//   - the amount must not exceed the per-currency limit (Rules.Limits, default
//     DefaultLimits; a currency without a limit is declined);
//   - a key seen before is answered with the stored result, never decided again;
//   - a reversal voids an approved sale, and a key reversed before its request arrived
//     stays reversed (the late request is answered "reversed");
//   - refunds reference an approved, unreversed sale of the same device and currency
//     and together never exceed its amount;
//   - a batch close is compared with the ledger's own totals for the batch: the
//     device's approved sales and refunds whose request named that batch, and, for
//     entries without a batch (older devices), those created in [opened_at,
//     closed_at). An entry keeps the batch of its first request.
//
// Reconciliation reads two index buckets, not the ledger: one keyed by device, batch
// and key for entries that name a batch, one keyed by device and created_at for
// entries that do not. PutEntry keeps them in the same transaction as the entry; a
// ledger written before they existed gets them when it is opened writable (one
// transaction over the whole ledger, once).
//
// The ledger work sits behind Applier: "apply this batch of device messages in one
// transaction and return each answer". Local is this process's bbolt Ledger with the
// Rules; Remote is an HTTP client of a Server, which serves a Local to other posgw
// processes.
//
// # Several processes, one ledger
//
// The ledger is one bbolt file and bbolt allows one process per file: a second posgw
// on the same data directory fails fast with ErrLocked. Gateways share one Ledger
// safely inside one process (posgw -instances N): bbolt serializes the write
// transactions and each key is looked up and decided inside one.
//
// Several posgw processes (on one machine or several) share a ledger through its
// owner: one process opens the file and serves it (Server; posgw -ledger-listen), the
// others decide through it (Remote; posgw -ledger-url). A resend that the broker hands
// to another member of the shared subscription is therefore decided against the same
// ledger and never twice. The server decodes and validates every message again and
// applies the decision rules itself (a client's Rules are not used); each request is
// one transaction. Calls carry a shared bearer token (ReadToken), compared in
// constant time. The link can run over TLS (ServerConfig.TLS from ServerTLSConfig;
// an https URL and RemoteConfig.TLS from ClientTLSConfig, TLS 1.2 at least, 1.3 when
// both sides offer it), and the server can require client certificates signed by its
// client CA (mutual TLS). A listener on a non-loopback address that authenticates
// nobody, neither by token nor by client certificate, is refused (CheckListen); with
// mutual TLS the token is optional but recommended, so that a copied client key
// alone cannot write the ledger. A failed handshake is ErrLedgerTLS, not
// ErrLedgerUnreachable: it lasts until the certificates agree.
//
// # Caveats
//
// Without ServerConfig.TLS the ledger link is plain HTTP: the token and the requests
// (payment codes included) travel in clear text. Use TLS whenever the link leaves
// the machine. With TLS 1.3 the server checks a client certificate after the client
// has finished its side of the handshake, so a refused client may see a reset
// connection (ErrLedgerUnreachable) instead of the server's alert; the server logs
// every failed handshake.
//
// The owner is a single point of failure: while it is down the other processes
// answer nothing (the devices keep their requests and resend), and they log that once
// per outage. Nothing is lost or decided twice, but nothing is decided either.
//
// A Remote splits a batch larger than MaxApplyMessages or MaxApplyBody into several
// requests, each its own transaction; when a later one fails, the earlier ones are
// recorded but unanswered until the devices resend.
//
// A batch close is reconciled against the ledger as it stands when the close arrives.
// Devices send a batch's requests before its close, but a request that reaches the
// ledger after the close (a resend handed to another instance) is not counted, and
// the stored answer stays "declined".
package gateway
