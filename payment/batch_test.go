package payment

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
)

// outboxBatch returns the batch field of the key's outbox message of kind.
func (h *harness) outboxBatch(kind, key string) string {
	h.t.Helper()
	es, err := h.st.Peek(1<<20, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range es {
		var w wire
		if err := json.Unmarshal(e.Data, &w); err != nil {
			h.t.Fatal(err)
		}
		if w.Kind != kind || w.Key != key {
			continue
		}
		var m struct{ Batch string }
		if err := json.Unmarshal(w.Msg, &m); err != nil {
			h.t.Fatal(err)
		}
		return m.Batch
	}
	h.t.Fatalf("no %s message for %s in the outbox", kind, key)
	return ""
}

// mustRefuseClose checks that CloseBatch refuses with a *BatchBusyError and changes
// nothing, and returns the error.
func (h *harness) mustRefuseClose() *BatchBusyError {
	h.t.Helper()
	ctx := context.Background()
	before, _ := h.e.CurrentBatch(ctx)
	depth := len(h.outbox())
	_, err := h.e.CloseBatch(ctx)
	var busy *BatchBusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBatchBusy) {
		h.t.Fatalf("CloseBatch = %v, want a *BatchBusyError", err)
	}
	if !strings.Contains(err.Error(), "close again when they finish") {
		h.t.Errorf("refusal does not say what to do: %v", err)
	}
	if after, _ := h.e.CurrentBatch(ctx); after.ID != before.ID || after.Status != BatchOpen || len(h.outbox()) != depth {
		h.t.Fatalf("refused close changed something: batch %+v, outbox %v", after, h.outbox())
	}
	return busy
}

func (h *harness) mustClose() Batch {
	h.t.Helper()
	b, err := h.e.CloseBatch(context.Background())
	if err != nil {
		h.t.Fatalf("CloseBatch: %v", err)
	}
	return b
}

// TestBatchMembershipSale: a sale belongs to the batch open when it was created. A
// close while it authorizes is refused; once it is approved the close succeeds and the
// closed batch counts it; a sale created after the close belongs to the next batch.
func TestBatchMembershipSale(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer func() { h.stop() }()
	ctx := context.Background()
	a, _ := h.e.CurrentBatch(ctx)
	s := h.sale(1000, "KRW", alipay)
	if s.BatchID != a.ID || h.outboxBatch(KindPayment, s.ID) != a.ID {
		t.Fatalf("sale batch %q, request batch %q, want %q", s.BatchID, h.outboxBatch(KindPayment, s.ID), a.ID)
	}
	busy := h.mustRefuseClose()
	if busy.Authorizing != 1 || busy.InDoubt+busy.Waiting+busy.Refunds != 0 || busy.Within <= 0 || busy.Within > 2*time.Minute {
		t.Fatalf("refusal %+v", busy)
	}
	if !strings.Contains(busy.Error(), "1 sale of this batch is still authorizing or in doubt") {
		t.Errorf("message: %v", busy)
	}
	h.result(s.ID, "", ResultApproved, "")
	closed := h.mustClose()
	if closed.ID != a.ID || len(closed.Totals) != 1 || closed.Totals[0].SalesCount != 1 || closed.Totals[0].SalesMinor != 1000 {
		t.Fatalf("closed batch %+v", closed)
	}
	if got := h.mustGet(s.ID); got.BatchID != a.ID {
		t.Fatalf("approved sale moved to batch %s", got.BatchID)
	}
	b, _ := h.e.CurrentBatch(ctx)
	s2 := h.sale(300, "KRW", alipay2)
	if h.outboxBatch(KindPayment, s2.ID) != b.ID {
		t.Fatalf("request of the sale after the close carries batch %q, want %q", h.outboxBatch(KindPayment, s2.ID), b.ID)
	}
	h.result(s2.ID, "", ResultApproved, "")
	if got := h.mustGet(s2.ID); got.BatchID != b.ID {
		t.Fatalf("sale after the close in batch %s, want %s", got.BatchID, b.ID)
	}
	if b, _ = h.e.CurrentBatch(ctx); len(b.Totals) != 1 || b.Totals[0].SalesMinor != 300 {
		t.Fatalf("batch B %+v", b.Totals)
	}
}

// TestBatchMembershipRefund: the same for a refund, whose sale belongs to an earlier
// batch.
func TestBatchMembershipRefund(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer func() { h.stop() }()
	ctx := context.Background()
	s := h.sale(5000, "KRW", alipay)
	h.result(s.ID, "", ResultApproved, "")
	first := h.mustClose()
	a, _ := h.e.CurrentBatch(ctx)
	r, err := h.e.Refund(ctx, s.ID, 1200)
	if err != nil {
		t.Fatal(err)
	}
	if r.BatchID != a.ID || h.outboxBatch(KindRefund, r.ID) != a.ID {
		t.Fatalf("refund batch %q, request batch %q, want %q", r.BatchID, h.outboxBatch(KindRefund, r.ID), a.ID)
	}
	busy := h.mustRefuseClose()
	if busy.Refunds != 1 || busy.Authorizing+busy.InDoubt+busy.Waiting != 0 || !strings.Contains(busy.Error(), "1 refund of this batch") {
		t.Fatalf("refusal %+v: %v", busy, busy)
	}
	h.result(r.ID, KindRefund, ResultApproved, "")
	closed := h.mustClose()
	want := Total{Scheme: "alipay", Currency: "KRW", RefundsCount: 1, RefundsMinor: 1200, NetMinor: -1200}
	if closed.ID != a.ID || len(closed.Totals) != 1 || closed.Totals[0] != want {
		t.Fatalf("closed batch %+v, want %+v", closed.Totals, want)
	}
	if got, _ := h.e.GetBatch(first.ID); got.Totals[0].RefundsCount != 0 {
		t.Fatalf("refund counted in the sale's batch: %+v", got.Totals)
	}
	// A refund created after the close belongs to the next batch; a declined one
	// frees the close without counting.
	b, _ := h.e.CurrentBatch(ctx)
	r2, err := h.e.Refund(ctx, s.ID, 100)
	if err != nil || r2.BatchID != b.ID {
		t.Fatalf("refund after the close: %+v %v", r2, err)
	}
	h.mustRefuseClose()
	h.result(r2.ID, KindRefund, ResultDeclined, "no")
	if closed := h.mustClose(); closed.ID != b.ID || len(closed.Totals) != 0 {
		t.Fatalf("batch with a declined refund %+v", closed)
	}
}

// TestBatchCloseWaitsForWaitingAndInDoubt: a sale waiting for a code holds the close
// until it is cancelled; an in-doubt sale until the query timeout settles it.
func TestBatchCloseWaitsForWaitingAndInDoubt(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Second)
	defer func() { h.stop() }()
	ctx := context.Background()
	w, _ := h.e.Create(ctx, 100, "KRW")
	if busy := h.mustRefuseClose(); busy.Waiting != 1 || !strings.Contains(busy.Error(), "scan the code or cancel the sale") {
		t.Fatalf("refusal %+v: %v", busy, busy)
	}
	if _, err := h.e.Cancel(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	h.mustClose()

	s := h.sale(100, "KRW", alipay)
	h.clock.Add(2 * time.Second)
	h.waitStatus(s.ID, StatusInDoubt)
	if busy := h.mustRefuseClose(); busy.InDoubt != 1 || busy.Authorizing != 0 {
		t.Fatalf("refusal %+v", busy)
	}
	h.clock.Add(2 * time.Second)
	h.waitStatus(s.ID, StatusReversalPending) // settled: not paid, reversal queued
	if closed := h.mustClose(); len(closed.Totals) != 0 {
		t.Fatalf("batch counts a sale that did not go through: %+v", closed.Totals)
	}
}

// TestBatchStoredOfflineCounted: a sale stored offline is counted in its batch when it
// is accepted and does not hold the close; its approval after the close changes no
// batch. One declined while its batch is still open is taken out again.
func TestBatchStoredOfflineCounted(t *testing.T) {
	policy := func(c *Config) {
		c.Offline = Policies{Default: OfflinePolicy{Action: Defer, MaxAmountMinor: map[string]int64{"KRW": 1e6},
			MaxTotalMinor: map[string]int64{"KRW": 1e7}, MaxCount: 10}}
	}
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, policy)
	defer func() { h.stop() }()
	ctx := context.Background()
	h.setOnline(false)
	s := h.sale(4000, "KRW", alipay)
	if s.Status != StatusStoredOffline {
		t.Fatalf("sale %+v", s)
	}
	closed := h.mustClose()
	if len(closed.Totals) != 1 || closed.Totals[0].SalesCount != 1 || closed.Totals[0].SalesMinor != 4000 {
		t.Fatalf("stored offline sale not counted: %+v", closed.Totals)
	}
	h.setOnline(true)
	h.result(s.ID, "", ResultApproved, "")
	if b, _ := h.e.CurrentBatch(ctx); len(b.Totals) != 0 {
		t.Fatalf("approval after the close counted again: %+v", b.Totals)
	}
	if got := h.mustGet(s.ID); got.Status != StatusApproved || got.BatchID != closed.ID {
		t.Fatalf("sale %+v", got)
	}
	h.setOnline(false)
	d := h.sale(700, "KRW", alipay2)
	if b, _ := h.e.CurrentBatch(ctx); len(b.Totals) != 1 || b.Totals[0].SalesMinor != 700 {
		t.Fatalf("open batch %+v", b.Totals)
	}
	h.result(d.ID, "", ResultDeclined, "expired code")
	if b, _ := h.e.CurrentBatch(ctx); len(b.Totals) != 0 {
		t.Fatalf("declined sale still counted: %+v", b.Totals)
	}
}

// TestBatchIDSurvivesRestart: the batch of a waiting, an authorizing sale and of a
// pending refund is stored with them; after a restart the close still waits and the
// sale counts in its own batch.
func TestBatchIDSurvivesRestart(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer func() { h.stop() }()
	ctx := context.Background()
	a, _ := h.e.CurrentBatch(ctx)
	s := h.sale(1000, "KRW", alipay)
	w, _ := h.e.Create(ctx, 50, "KRW")
	h.restart(time.Minute) // killed here
	if got := h.mustGet(s.ID); got.BatchID != a.ID || got.Status != StatusAuthorizing {
		t.Fatalf("after restart: %+v", got)
	}
	if got := h.mustGet(w.ID); got.BatchID != a.ID {
		t.Fatalf("waiting sale after restart: %+v", got)
	}
	if busy := h.mustRefuseClose(); busy.Authorizing != 1 || busy.Waiting != 1 {
		t.Fatalf("refusal after restart %+v", busy)
	}
	h.e.Cancel(ctx, w.ID)
	h.result(s.ID, "", ResultApproved, "")
	if closed := h.mustClose(); closed.ID != a.ID || len(closed.Totals) != 1 || closed.Totals[0].SalesMinor != 1000 {
		t.Fatalf("closed %+v", closed)
	}
}

// TestBatchLegacySaleWithoutBatch: a sale stored by an older version, authorizing and
// without a batch id, holds the open batch's close and is counted in it.
func TestBatchLegacySaleWithoutBatch(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer func() { h.stop() }()
	ctx := context.Background()
	h.stop()
	st, err := store.Open(h.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := h.clock.Now()
	r := &record{Sale: Sale{ID: newID(at), Status: StatusAuthorizing, AmountMinor: 900, Currency: "KRW", Scheme: "alipay",
		CreatedAt: at, UpdatedAt: at}, CodeKind: "wallet"}
	err = st.Update(func(tx *store.Tx) error {
		raw, _ := json.Marshal(wire{Kind: KindPayment, Key: r.ID, Msg: json.RawMessage(`{}`)})
		seq, err := tx.Enqueue(raw)
		if err != nil {
			return err
		}
		r.PaySeq = seq
		return putSale(tx, r)
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	h.start(time.Minute)
	a, _ := h.e.CurrentBatch(ctx)
	if busy := h.mustRefuseClose(); busy.Authorizing != 1 {
		t.Fatalf("refusal %+v", busy)
	}
	h.result(r.ID, "", ResultApproved, "")
	if got := h.mustGet(r.ID); got.BatchID != a.ID {
		t.Fatalf("legacy sale counted in %q, want the open batch %q", got.BatchID, a.ID)
	}
	if closed := h.mustClose(); len(closed.Totals) != 1 || closed.Totals[0].SalesMinor != 900 {
		t.Fatalf("closed %+v", closed.Totals)
	}
}

// TestBatchCloseWaitsForMerchantPresented: a merchant-presented sale waiting for the
// customer's payment holds the close; voiding it (a reversal is queued) frees it.
func TestBatchCloseWaitsForMerchantPresented(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, withMerchantCode)
	defer func() { h.stop() }()
	ctx := context.Background()
	a, _ := h.e.CurrentBatch(ctx)
	s, err := h.e.Present(ctx, 498, "JPY")
	if err != nil || s.BatchID != a.ID || h.outboxBatch(KindPayment, s.ID) != a.ID {
		t.Fatalf("Present: %+v %v", s, err)
	}
	if busy := h.mustRefuseClose(); busy.Authorizing != 1 {
		t.Fatalf("refusal %+v", busy)
	}
	if v, err := h.e.Cancel(ctx, s.ID); err != nil || v.Status != StatusReversalPending {
		t.Fatalf("void: %+v %v", v, err)
	}
	if closed := h.mustClose(); closed.ID != a.ID || len(closed.Totals) != 0 {
		t.Fatalf("closed %+v", closed)
	}
}
