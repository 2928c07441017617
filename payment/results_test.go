package payment

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
)

// failingStore fails every Update after running it while fail is set, so bbolt rolls
// the whole transaction back, as a full disk or an I/O error at commit would.
type failingStore struct {
	Store
	fail atomic.Bool
}

func (f *failingStore) Update(fn func(*store.Tx) error) error {
	if !f.fail.Load() {
		return f.Store.Update(fn)
	}
	return f.Store.Update(func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errors.New("disk full")
	})
}

func TestHandleResultsOneTransaction(t *testing.T) {
	var fs *failingStore
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, func(c *Config) {
		fs = &failingStore{Store: c.Store}
		c.Store = fs
	})
	defer h.stop()
	ctx := context.Background()
	var ids []string
	for i := 0; i < 3; i++ {
		s := h.sale(1000+int64(i), "KRW", fmt.Sprintf("2812345678901234%02d", i))
		if s.Status != StatusAuthorizing {
			t.Fatalf("sale %d: %s", i, s.Status)
		}
		ids = append(ids, s.ID)
	}
	rs := []Result{
		{Key: ids[0], Kind: KindPayment, Status: ResultApproved},
		{Key: ids[1], Kind: KindPayment, Status: ResultDeclined, Reason: "insufficient balance"},
		{Key: ids[2], Kind: KindPayment, Status: ResultApproved},
		{Key: ids[0], Kind: KindPayment, Status: ResultApproved}, // a duplicate in the same group
		{Key: "0190b7a4-0000-7000-8000-000000000000", Kind: KindPayment, Status: ResultApproved},
	}

	// The commit fails: nothing changes, on disk or in the engine, and nothing prints.
	fs.fail.Store(true)
	if err := h.e.HandleResults(ctx, rs); err == nil {
		t.Fatal("HandleResults succeeded on a failing store")
	}
	fs.fail.Store(false)
	for _, id := range ids {
		if s := h.mustGet(id); s.Status != StatusAuthorizing {
			t.Fatalf("after a failed commit %s is %s", id, s.Status)
		}
	}
	select {
	case s := <-h.finished:
		t.Fatalf("Finished ran for an uncommitted result: %+v", s)
	default:
	}

	// The resend succeeds: every result applied once, callbacks after the commit.
	if err := h.e.HandleResults(ctx, rs); err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{ids[0]: StatusApproved, ids[1]: StatusDeclined, ids[2]: StatusApproved}
	for id, st := range want {
		if s := h.mustGet(id); s.Status != st {
			t.Errorf("%s is %s, want %s", id, s.Status, st)
		}
	}
	for range want {
		select {
		case s := <-h.finished:
			if s.Status != want[s.ID] {
				t.Errorf("Finished %s with %s", s.ID, s.Status)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Finished not called")
		}
	}
	select {
	case s := <-h.finished:
		t.Fatalf("Finished ran twice: %+v", s)
	default:
	}
	for _, id := range ids {
		if kinds := h.outboxKinds(id); len(kinds) != 0 {
			t.Errorf("outbox still holds %v for %s", kinds, id)
		}
	}
	b, err := h.e.CurrentBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, tot := range b.Totals {
		n += tot.SalesCount
	}
	if n != 2 {
		t.Errorf("open batch counts %d approved sales, want 2: %+v", n, b.Totals)
	}
}
