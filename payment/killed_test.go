package payment

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestKilledInState is Mender's "killed in state X" table for the sale: drive a sale to
// each state, stop the engine there (every transition is one bbolt transaction, so
// this is exactly what SIGKILL after the commit leaves), restart, and check that the
// sale is in the same state with the same messages owed, then that it runs on to a
// synced end.
func TestKilledInState(t *testing.T) {
	deferAll := func(c *Config) {
		c.Offline = Policies{Default: OfflinePolicy{Action: Defer, MaxAmountMinor: map[string]int64{"KRW": 1e6},
			MaxTotalMinor: map[string]int64{"KRW": 1e7}, MaxCount: 10, MaxAge: time.Hour}}
	}
	ctx := context.Background()
	type step func(h *harness, id string)
	result := func(kind, status string) step {
		return func(h *harness, id string) { h.result(id, kind, status, "") }
	}
	advance := func(want Status) step {
		return func(h *harness, id string) {
			h.clock.Add(2 * time.Second)
			h.waitStatus(id, want)
		}
	}
	for _, c := range []struct {
		name   string
		opts   []func(*Config)
		to     func(h *harness) string // drives a sale to the state and returns its id
		state  Status
		owes   []string // outbox kinds for the sale in that state
		chain  []step   // after the restart
		states []Status // status after each step of the chain
	}{
		{name: "waiting_for_code", state: StatusWaitingForCode,
			to: func(h *harness) string { s, _ := h.e.Create(ctx, 100, "KRW"); return s.ID },
			chain: []step{
				func(h *harness, id string) {
					if w, ok := h.e.Waiting(ctx); !ok || w.ID != id {
						h.t.Fatalf("waiting sale not recovered: %+v %v", w, ok)
					}
					h.e.Scan(ctx, alipay)
				},
				result("", ResultApproved),
			},
			states: []Status{StatusAuthorizing, StatusApproved}},
		{name: "authorizing", state: StatusAuthorizing, owes: []string{KindPayment},
			to:     func(h *harness) string { return h.sale(100, "KRW", alipay).ID },
			chain:  []step{advance(StatusInDoubt), result(KindQuery, ResultApproved)},
			states: []Status{StatusInDoubt, StatusApproved}},
		{name: "in_doubt", state: StatusInDoubt, owes: []string{KindPayment, KindQuery},
			to: func(h *harness) string {
				id := h.sale(100, "KRW", alipay).ID
				advance(StatusInDoubt)(h, id)
				return id
			},
			chain:  []step{advance(StatusReversalPending), result(KindReversal, ResultReversed)},
			states: []Status{StatusReversalPending, StatusReversed}},
		{name: "reversal_pending", state: StatusReversalPending, owes: []string{KindReversal},
			to: func(h *harness) string {
				id := h.sale(100, "KRW", alipay).ID
				advance(StatusInDoubt)(h, id)
				h.result(id, KindQuery, ResultUnknown, "")
				return id
			},
			chain:  []step{result(KindReversal, ResultReversed)},
			states: []Status{StatusReversed}},
		{name: "stored_offline", state: StatusStoredOffline, owes: []string{KindPayment}, opts: []func(*Config){deferAll},
			to: func(h *harness) string {
				h.setOnline(false)
				return h.sale(100, "KRW", alipay).ID
			},
			chain:  []step{result("", ResultApproved)},
			states: []Status{StatusApproved}},
		{name: "refused", state: StatusRefused, owes: []string{KindAttempt},
			to: func(h *harness) string {
				h.setOnline(false)
				return h.sale(100, "KRW", alipay).ID
			},
			chain:  []step{result(KindAttempt, ResultRecorded)},
			states: []Status{StatusRefused}},
		{name: "declined locally", state: StatusDeclined, owes: []string{KindAttempt},
			to:     func(h *harness) string { return h.sale(100, "KRW", "no code 99").ID },
			chain:  []step{result(KindAttempt, ResultRecorded)},
			states: []Status{StatusDeclined}},
		{name: "cancelled", state: StatusCancelled, owes: []string{KindAttempt},
			to: func(h *harness) string {
				s, _ := h.e.Create(ctx, 100, "KRW")
				h.e.Cancel(ctx, s.ID)
				return s.ID
			},
			chain:  []step{result(KindAttempt, ResultRecorded)},
			states: []Status{StatusCancelled}},
		{name: "approved", state: StatusApproved,
			to: func(h *harness) string {
				id := h.sale(100, "KRW", alipay).ID
				h.result(id, "", ResultApproved, "")
				return id
			}},
		{name: "declined", state: StatusDeclined,
			to: func(h *harness) string {
				id := h.sale(100, "KRW", alipay).ID
				h.result(id, "", ResultDeclined, "")
				return id
			}},
		{name: "reversed", state: StatusReversed,
			to: func(h *harness) string {
				id := h.sale(100, "KRW", alipay).ID
				advance(StatusInDoubt)(h, id)
				h.result(id, KindQuery, ResultReversed, "")
				return id
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Second, c.opts...)
			defer func() { h.stop() }()
			id := c.to(h)
			if got := h.mustGet(id).Status; got != c.state {
				t.Fatalf("drove to %s, want %s", got, c.state)
			}
			h.restart(time.Second, c.opts...) // killed here
			h.setOnline(true)
			if err := h.st.Check(); err != nil {
				t.Fatalf("store after restart: %v", err)
			}
			got := h.mustGet(id)
			if got.Status != c.state {
				t.Fatalf("after restart: %s, want %s", got.Status, c.state)
			}
			if k := h.outboxKinds(id); !eq(k, c.owes) {
				t.Fatalf("after restart owes %v, want %v", k, c.owes)
			}
			for i, s := range c.chain {
				s(h, id)
				if got := h.mustGet(id).Status; got != c.states[i] {
					t.Fatalf("step %d: %s, want %s", i, got, c.states[i])
				}
			}
			if err := h.st.Check(); err != nil {
				t.Fatalf("store at the end: %v", err)
			}
			end := h.mustGet(id)
			if !end.Status.Final() || !end.Synced || len(h.outboxKinds(id)) != 0 {
				t.Fatalf("did not end final and synced: %+v, owes %v", end, h.outboxKinds(id))
			}
		})
	}
}

// TestKilledWithRefundAndBatchOwed stops the engine with a refund pending and a closed
// batch not yet recorded by the cloud: both are still owed after the restart and
// settle normally.
func TestKilledWithRefundAndBatchOwed(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer func() { h.stop() }()
	s := h.sale(5000, "KRW", alipay)
	h.result(s.ID, "", ResultApproved, "")
	closed, err := h.e.CloseBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.e.Refund(ctx, s.ID, 1200) // in batch 2
	if err != nil {
		t.Fatal(err)
	}
	h.restart(time.Minute) // killed here
	if k := h.outboxKinds(r.ID); !eq(k, []string{KindRefund}) {
		t.Fatalf("refund owes %v", k)
	}
	if k := h.outboxKinds(closed.ID); !eq(k, []string{KindBatch}) {
		t.Fatalf("batch owes %v", k)
	}
	if cur, _ := h.e.CurrentBatch(ctx); cur.Number != 2 {
		t.Fatalf("open batch after restart: %+v", cur)
	}
	if _, err := h.e.CloseBatch(ctx); !errors.Is(err, ErrBatchBusy) {
		t.Fatalf("close with a refund pending after restart: %v", err)
	}
	if _, err := h.e.Refund(ctx, s.ID, 3801); !errors.Is(err, ErrRefundTooLarge) {
		t.Fatalf("pending refund forgotten after restart: %v", err)
	}
	h.result(r.ID, KindRefund, ResultApproved, "")
	h.result(closed.ID, KindBatch, ResultRecorded, "")
	if got, _ := h.e.GetRefund(r.ID); got.Status != RefundApproved || !got.Synced {
		t.Fatalf("refund %+v", got)
	}
	if cur, _ := h.e.CurrentBatch(ctx); len(cur.Totals) != 1 || cur.Totals[0].RefundsMinor != 1200 || cur.Totals[0].NetMinor != -1200 {
		t.Fatalf("refund not counted in the open batch: %+v", cur.Totals)
	}
	if len(h.outbox()) != 0 {
		t.Fatalf("outbox %v", h.outbox())
	}
}
