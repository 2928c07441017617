package gateway

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/pgtest"
	wsync "github.com/walletless/walletless/sync"
)

var update = flag.Bool("update", false, "rewrite the state table in docs/protocol.md (and golden transcripts) from the tests")

// The state table's keys: K is the sale's key (device dev-a), R a refund's key.
const (
	stDev   = "dev-a"
	stOther = "dev-b"
	stK     = "K"
	stR     = "R"
)

// stateRow is one row of docs/protocol.md's state table: what is stored for the key
// before, the request that comes in, and what the cloud must answer and store.
type stateRow struct {
	group   string
	before  string // the stored state, in words
	setup   []Message
	request string // the incoming request, in words
	msg     Message
	status  string // the answer
	reason  string // substring of the answer's reason ("" : no check)
	after   string // what is stored afterwards, as describe() says it
	// sameTime: the answer's decided_at must equal the first answer's for the key
	// (a replay answered from the ledger).
	sameTime bool
}

func stPay(dev, key string, amount int64, age time.Duration, offline bool) Message {
	p := &wsync.PaymentRequest{V: 1, Key: key, Device: dev, AmountMinor: amount, Currency: "KRW", Kind: "wallet",
		Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456#1a2b3c4d", CreatedAt: time.Now().Add(-age).UTC(), Offline: offline}
	return Message{Kind: wsync.KindPayment, Device: dev, Key: key, Msg: p}
}

func stQuery(dev, key string) Message {
	return Message{Kind: wsync.KindQuery, Device: dev, Key: key, Msg: &wsync.QueryRequest{V: 1, Key: key, Device: dev, AskedAt: time.Now().UTC()}}
}

func stRev(dev, key string) Message {
	return Message{Kind: wsync.KindReversal, Device: dev, Key: key, Msg: &wsync.ReversalRequest{V: 1, Key: key, Device: dev, AmountMinor: 12000, Currency: "KRW", Scheme: "alipay", Reason: "no answer within 30s", CreatedAt: time.Now().UTC()}}
}

func stRefund(dev, key, orig string, amount int64, cur string) Message {
	return Message{Kind: wsync.KindRefund, Device: dev, Key: key, Msg: &wsync.RefundRequest{V: 1, Key: key, Device: dev, OriginalKey: orig, AmountMinor: amount, Currency: cur, CreatedAt: time.Now().UTC()}}
}

func stAttempt(dev, key string) Message {
	return Message{Kind: wsync.KindAttempt, Device: dev, Key: key, Msg: &wsync.AttemptRecord{V: 1, Key: key, Device: dev, AmountMinor: 3500, Currency: "KRW", Outcome: wsync.AttemptCancelled, CreatedAt: time.Now().UTC()}}
}

func stBatch(dev, key string, totals ...wsync.BatchTotal) Message {
	now := time.Now().UTC()
	if totals == nil {
		totals = []wsync.BatchTotal{}
	}
	return Message{Kind: wsync.KindBatch, Device: dev, Key: key, Msg: &wsync.BatchClose{V: 1, Key: key, Device: dev, OpenedAt: now.Add(-time.Hour), ClosedAt: now.Add(time.Hour), Totals: totals}}
}

func line(sales, salesMinor, refunds, refundsMinor int64) wsync.BatchTotal {
	return wsync.BatchTotal{Scheme: "alipay", Currency: "KRW", SalesCount: sales, SalesMinor: salesMinor, RefundsCount: refunds, RefundsMinor: refundsMinor}
}

// stateRows is the state table. Sales are KRW 12,000 (scheme alipay) unless said.
func stateRows() []stateRow {
	var (
		none         []Message
		approved     = []Message{stPay(stDev, stK, 12000, 0, false)}
		declined     = []Message{stPay(stDev, stK, 2_000_000, 0, false)}
		reversed     = []Message{stPay(stDev, stK, 12000, 0, false), stRev(stDev, stK)}
		tombstone    = []Message{stRev(stDev, stK)}
		refunded     = []Message{stPay(stDev, stK, 12000, 0, false), stRefund(stDev, stR, stK, 4000, "KRW")}
		otherDevice  = []Message{stPay(stOther, stK, 12000, 0, false)}
		refundKey    = []Message{stPay(stDev, "S", 12000, 0, false), stRefund(stDev, stK, "S", 1000, "KRW")}
		refundStored = []Message{stPay(stDev, stK, 12000, 0, false), stRefund(stDev, stR, stK, 4000, "KRW")}
		attempt      = []Message{stAttempt(stDev, stK)}
		batchDone    = []Message{stPay(stDev, stK, 12000, 0, false), stBatch(stDev, "B", line(2, 24000, 0, 0))}
		batchOther   = []Message{stBatch(stOther, "B")}
		saleInBatch  = []Message{stPay(stDev, stK, 12000, 0, false), stPay(stDev, "K2", 2_000_000, 0, false), stRefund(stDev, stR, stK, 4000, "KRW")}
	)
	const (
		sApproved = "sale approved"
		keyUsed   = "idempotency key already used"
	)
	return []stateRow{
		{group: "payment", before: "nothing", setup: none, request: "payment", msg: stPay(stDev, stK, 12000, 0, false), status: "approved", after: sApproved},
		{group: "payment", before: "nothing", setup: none, request: "payment over the limit", msg: stPay(stDev, stK, 2_000_000, 0, false), status: "declined", reason: "limit", after: "sale declined"},
		{group: "payment", before: "nothing", setup: none, request: "payment created 2 min ago", msg: stPay(stDev, stK, 12000, 2*time.Minute, false), status: "declined", reason: "too old", after: "sale declined"},
		{group: "payment", before: "nothing", setup: none, request: "payment `offline: true` created 2 h ago", msg: stPay(stDev, stK, 12000, 2*time.Hour, true), status: "approved", after: sApproved},
		{group: "payment", before: "sale approved", setup: approved, request: "payment (replay)", msg: stPay(stDev, stK, 12000, 0, false), status: "approved", after: sApproved, sameTime: true},
		{group: "payment", before: "sale declined", setup: declined, request: "payment (replay)", msg: stPay(stDev, stK, 2_000_000, 0, false), status: "declined", reason: "limit", after: "sale declined", sameTime: true},
		{group: "payment", before: "sale reversed", setup: reversed, request: "payment (replay)", msg: stPay(stDev, stK, 12000, 0, false), status: "reversed", after: "sale reversed", sameTime: true},
		{group: "payment", before: "reversed before its request", setup: tombstone, request: "payment", msg: stPay(stDev, stK, 12000, 0, false), status: "reversed", after: "sale reversed", sameTime: true},
		{group: "payment", before: "another device's sale", setup: otherDevice, request: "payment", msg: stPay(stDev, stK, 12000, 0, false), status: "declined", reason: keyUsed, after: "dev-b's sale approved (unchanged); nothing stored"},
		{group: "payment", before: "a refund", setup: refundKey, request: "payment", msg: stPay(stDev, stK, 12000, 0, false), status: "declined", reason: keyUsed, after: "refund approved (unchanged); nothing stored"},

		{group: "query", before: "nothing", setup: none, request: "query", msg: stQuery(stDev, stK), status: "unknown", after: "nothing"},
		{group: "query", before: "sale approved", setup: approved, request: "query", msg: stQuery(stDev, stK), status: "approved", after: sApproved, sameTime: true},
		{group: "query", before: "sale declined", setup: declined, request: "query", msg: stQuery(stDev, stK), status: "declined", reason: "limit", after: "sale declined", sameTime: true},
		{group: "query", before: "sale reversed", setup: reversed, request: "query", msg: stQuery(stDev, stK), status: "reversed", after: "sale reversed", sameTime: true},
		{group: "query", before: "another device's sale", setup: otherDevice, request: "query", msg: stQuery(stDev, stK), status: "unknown", after: "dev-b's sale approved (unchanged); nothing stored"},
		{group: "query", before: "a refund", setup: refundKey, request: "query", msg: stQuery(stDev, stK), status: "unknown", after: "refund approved (unchanged); nothing stored"},

		{group: "reversal", before: "nothing", setup: none, request: "reversal", msg: stRev(stDev, stK), status: "reversed", reason: "recorded as reversed", after: "sale reversed"},
		{group: "reversal", before: "sale approved", setup: approved, request: "reversal", msg: stRev(stDev, stK), status: "reversed", after: "sale reversed"},
		{group: "reversal", before: "sale declined", setup: declined, request: "reversal", msg: stRev(stDev, stK), status: "reversed", reason: "nothing was charged", after: "sale declined", sameTime: true},
		{group: "reversal", before: "sale reversed", setup: reversed, request: "reversal (replay)", msg: stRev(stDev, stK), status: "reversed", reason: "already reversed", after: "sale reversed", sameTime: true},
		{group: "reversal", before: "sale approved, partly refunded", setup: refunded, request: "reversal", msg: stRev(stDev, stK), status: "declined", reason: "refund", after: "sale approved, refunded 4000"},
		{group: "reversal", before: "another device's sale", setup: otherDevice, request: "reversal", msg: stRev(stDev, stK), status: "declined", reason: "not a sale of this device", after: "dev-b's sale approved (unchanged); nothing stored"},
		{group: "reversal", before: "a refund", setup: refundKey, request: "reversal", msg: stRev(stDev, stK), status: "declined", reason: "not a sale of this device", after: "refund approved (unchanged); nothing stored"},

		{group: "refund", before: "sale approved", setup: approved, request: "refund R of 4000", msg: stRefund(stDev, stR, stK, 4000, "KRW"), status: "approved", after: "sale approved, refunded 4000; refund approved"},
		{group: "refund", before: "sale approved", setup: approved, request: "refund R of 12001 (above the sale)", msg: stRefund(stDev, stR, stK, 12001, "KRW"), status: "declined", reason: "refundable rest of 12000", after: "sale approved; refund declined"},
		{group: "refund", before: "sale approved, refunded 4000", setup: refunded, request: "refund R2 of 8001", msg: stRefund(stDev, "R2", stK, 8001, "KRW"), status: "declined", reason: "refundable rest of 8000", after: "sale approved, refunded 4000; refund declined"},
		{group: "refund", before: "sale approved", setup: approved, request: "refund R in JPY", msg: stRefund(stDev, stR, stK, 100, "JPY"), status: "declined", reason: "currency", after: "sale approved; refund declined"},
		{group: "refund", before: "sale declined", setup: declined, request: "refund R", msg: stRefund(stDev, stR, stK, 100, "KRW"), status: "declined", reason: "original sale is declined", after: "sale declined; refund declined"},
		{group: "refund", before: "sale reversed", setup: reversed, request: "refund R", msg: stRefund(stDev, stR, stK, 100, "KRW"), status: "declined", reason: "original sale is reversed", after: "sale reversed; refund declined"},
		{group: "refund", before: "nothing", setup: none, request: "refund R", msg: stRefund(stDev, stR, stK, 100, "KRW"), status: "declined", reason: "original sale unknown", after: "nothing; refund declined"},
		{group: "refund", before: "another device's sale", setup: otherDevice, request: "refund R", msg: stRefund(stDev, stR, stK, 100, "KRW"), status: "declined", reason: "original sale unknown", after: "dev-b's sale approved (unchanged); refund declined"},
		{group: "refund", before: "refund R approved", setup: refundStored, request: "refund R (replay)", msg: stRefund(stDev, stR, stK, 4000, "KRW"), status: "approved", after: "sale approved, refunded 4000; refund approved", sameTime: true},
		{group: "refund", before: "refund R approved", setup: refundStored, request: "refund R for another sale", msg: stRefund(stDev, stR, "S", 4000, "KRW"), status: "declined", reason: keyUsed, after: "sale approved, refunded 4000; refund approved"},

		{group: "attempt", before: "nothing", setup: none, request: "attempt", msg: stAttempt(stDev, stK), status: "recorded", after: "attempt recorded"},
		{group: "attempt", before: "attempt recorded", setup: attempt, request: "attempt (replay)", msg: stAttempt(stDev, stK), status: "recorded", after: "attempt recorded"},

		{group: "batch", before: "nothing", setup: none, request: "close B with `totals: []`", msg: stBatch(stDev, "B"), status: "recorded", after: "batch recorded"},
		{group: "batch", before: "nothing", setup: none, request: "close B with a line of zeros", msg: stBatch(stDev, "B", line(0, 0, 0, 0)), status: "recorded", after: "batch recorded"},
		{group: "batch", before: "K approved, K2 declined, R approved", setup: saleInBatch, request: "close B: 1 sale 12000, 1 refund 4000", msg: stBatch(stDev, "B", line(1, 12000, 1, 4000)), status: "recorded", after: "batch recorded"},
		{group: "batch", before: "K approved, K2 declined, R approved", setup: saleInBatch, request: "close B: 2 sales 2012000, no refund", msg: stBatch(stDev, "B", line(2, 2012000, 0, 0)), status: "declined", reason: "totals differ: alipay/KRW: device 2 sales 2012000, 0 refunds 0; ledger 1 sales 12000, 1 refunds 4000", after: "batch declined"},
		{group: "batch", before: "batch B declined", setup: batchDone, request: "close B (replay, other totals)", msg: stBatch(stDev, "B", line(1, 12000, 0, 0)), status: "declined", reason: "device 2 sales 24000", after: "batch declined", sameTime: true},
		{group: "batch", before: "dev-b's batch B", setup: batchOther, request: "close B", msg: stBatch(stDev, "B"), status: "declined", reason: keyUsed, after: "dev-b's batch recorded (unchanged)"},
	}
}

// describe says in words what the ledger holds for the row's keys.
func describe(t *testing.T, l Store, row stateRow) string {
	t.Helper()
	var out string
	err := l.Transact(context.Background(), func(tx LedgerTx) error {
		if row.group == "batch" {
			b, ok, err := tx.Batch("B")
			switch {
			case err != nil:
				return err
			case !ok:
				out = "nothing"
			case b.Device != stDev:
				out = b.Device + "'s batch " + b.Status + " (unchanged)"
			default:
				out = "batch " + b.Status
			}
			return nil
		}
		if row.group == "attempt" {
			if _, ok, err := tx.Attempt(stK); err != nil || !ok {
				out = "nothing"
				return err
			}
			out = "attempt recorded"
			return nil
		}
		e, ok, err := tx.Entry(stK)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			out = "nothing"
		case e.Device != stDev:
			out = e.Device + "'s sale " + e.Status + " (unchanged)"
		case !e.IsSale():
			out = "refund " + e.Status + " (unchanged)"
		default:
			out = "sale " + e.Status
			if e.RefundedMinor > 0 {
				out += fmt.Sprintf(", refunded %d", e.RefundedMinor)
			}
		}
		if row.msg.Kind == wsync.KindPayment || row.msg.Kind == wsync.KindQuery || row.msg.Kind == wsync.KindReversal {
			if strings.Contains(out, "unchanged") {
				out += "; nothing stored"
			}
			return nil
		}
		key := row.msg.Key
		r, ok, err := tx.Entry(key)
		if err != nil {
			return err
		}
		if ok {
			out += "; refund " + r.Status
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStateTable drives the cloud's rules through every row of the state table in
// docs/protocol.md, each on a fresh ledger, and checks the answer, the stored state
// and, for replays, that decided_at is the first decision's. The table in the doc is
// generated from these rows (go test ./gateway -run TestStateTable -update) and must
// match them.
func TestStateTable(t *testing.T) {
	rows := stateRows()
	runStateTable(t, rows, func(t *testing.T) Store {
		l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
	checkDocTable(t, renderStateTable(rows))
}

// TestStateTablePostgres drives the same rows through the PostgreSQL ledger: both
// ledgers must follow the one documented table.
func TestStateTablePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	runStateTable(t, stateRows(), func(t *testing.T) Store {
		l, _ := openPG(t, srv)
		return l
	})
}

// runStateTable runs each row on a fresh ledger made by open. Each row's messages are
// made again just before it runs: their created_at is "now", and a row that ran
// minutes after the table was made would meet the staleness rule.
func runStateTable(t *testing.T, rows []stateRow, open func(*testing.T) Store) {
	for i, row := range rows {
		name := fmt.Sprintf("%02d %s: %s × %s", i+1, row.group, row.before, row.request)
		t.Run(name, func(t *testing.T) {
			row := stateRows()[i]
			l := open(t)
			local := NewLocal(l, Rules{}, nil)
			first := map[string]time.Time{}
			for _, m := range row.setup {
				a, err := local.Apply(context.Background(), []Message{m})
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := first[m.Key]; !ok || m.Kind == wsync.KindReversal {
					first[m.Key] = a[0].Result.DecidedAt
				}
			}
			a, err := local.Apply(context.Background(), []Message{row.msg})
			if err != nil {
				t.Fatal(err)
			}
			res := a[0].Result
			if res.Status != row.status || !strings.Contains(res.Reason, row.reason) || res.Kind != row.msg.Kind || res.Key != row.msg.Key {
				t.Errorf("answer %s/%s %q, want %s %q", res.Kind, res.Status, res.Reason, row.status, row.reason)
			}
			if res.DecidedAt.IsZero() {
				t.Errorf("answer without decided_at")
			}
			if row.sameTime && !res.DecidedAt.Equal(first[row.msg.Key]) {
				t.Errorf("decided_at %v, want the first decision's %v", res.DecidedAt, first[row.msg.Key])
			}
			if got := describe(t, l, row); got != row.after {
				t.Errorf("stored after: %q, want %q", got, row.after)
			}
		})
	}
}

const (
	tableBegin = "<!-- state-table: generated by go test ./gateway -run TestStateTable -update; do not edit -->"
	tableEnd   = "<!-- end of state-table -->"
)

func renderStateTable(rows []stateRow) string {
	var b strings.Builder
	b.WriteString("| # | kind | stored for the key before | request | answer | reason contains | stored after | decided_at |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rows {
		when := "now"
		if r.sameTime {
			when = "the stored one"
		}
		reason := "—"
		if r.reason != "" {
			reason = "“" + r.reason + "”"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | `%s` | %s | %s | %s |\n", i+1, r.group, r.before, r.request, r.status, reason, r.after, when)
	}
	return b.String()
}

// checkDocTable compares the table between the markers in docs/protocol.md with
// want, or rewrites it with -update.
func checkDocTable(t *testing.T, want string) {
	t.Helper()
	path := filepath.Join("..", "docs", "protocol.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/protocol.md has no state table between %q and %q", tableBegin, tableEnd)
	}
	got := doc[i+len(tableBegin)+1 : j]
	if got == want {
		return
	}
	if *update {
		doc = doc[:i+len(tableBegin)+1] + want + doc[j:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the state table in %s", path)
		return
	}
	t.Errorf("the state table in docs/protocol.md differs from the tests (rerun with -update to regenerate):\n--- doc\n%s\n--- tests\n%s", got, want)
}
