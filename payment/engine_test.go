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

type harness struct {
	t        *testing.T
	st       *store.Store
	e        *Engine
	cancel   context.CancelFunc
	done     chan error
	kicks    chan struct{}
	finished chan Sale
	now      time.Time
}

func newHarness(t *testing.T, path string, timeout time.Duration) *harness {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, kicks: make(chan struct{}, 100), finished: make(chan Sale, 100), done: make(chan error, 1)}
	h.e, err = New(Config{
		Store:        st,
		EncodeOutbox: func(a AuthRequest) ([]byte, error) { return json.Marshal(a) },
		Kick:         func() { h.kicks <- struct{}{} },
		Finished:     func(s Sale) { h.finished <- s },
		AuthTimeout:  timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.e.Run(ctx) }()
	return h
}

func (h *harness) stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.st.Close()
}

func (h *harness) mustGet(id string) Sale {
	h.t.Helper()
	s, err := h.e.Get(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func TestSaleApproved(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer h.stop()
	ctx := context.Background()
	s, err := h.e.Create(ctx, 12000, "krw")
	if err != nil || s.Status != StatusWaitingForCode || s.Currency != "KRW" || !ValidID(s.ID) {
		t.Fatalf("Create = %+v, %v", s, err)
	}
	s, ok, err := h.e.Scan(ctx, "281234567890123456")
	if err != nil || !ok || s.Status != StatusAuthorizing || s.Scheme != "alipay" {
		t.Fatalf("Scan = %+v %v %v", s, ok, err)
	}
	if strings.Contains(s.MaskedCode, "2812345678") {
		t.Fatalf("masked code shows the code: %q", s.MaskedCode)
	}
	<-h.kicks
	// The outbox entry was committed with the sale, before any network I/O.
	es, _ := h.st.Peek(10, nil)
	if len(es) != 1 {
		t.Fatalf("outbox has %d entries", len(es))
	}
	var a AuthRequest
	json.Unmarshal(es[0].Data, &a)
	if a.Key != s.ID || a.Code != "281234567890123456" || a.AmountMinor != 12000 {
		t.Fatalf("outbox request %+v", a)
	}
	if err := h.e.HandleResult(ctx, Result{Key: s.ID, Approved: true}); err != nil {
		t.Fatal(err)
	}
	if got := h.mustGet(s.ID); got.Status != StatusApproved {
		t.Fatalf("status %s", got.Status)
	}
	if f := <-h.finished; f.ID != s.ID || f.Status != StatusApproved {
		t.Fatalf("finished %+v", f)
	}
	if d, _, _ := h.st.OutboxStats(); d != 0 {
		t.Fatalf("outbox depth %d after result", d)
	}
	// A duplicate result changes nothing and prints nothing.
	h.e.HandleResult(ctx, Result{Key: s.ID, Approved: false, Reason: "late dup"})
	if got := h.mustGet(s.ID); got.Status != StatusApproved {
		t.Fatalf("duplicate result changed status to %s", got.Status)
	}
	select {
	case f := <-h.finished:
		t.Fatalf("duplicate result finished again: %+v", f)
	default:
	}
	// Unknown key: ignored.
	if err := h.e.HandleResult(ctx, Result{Key: "nope", Approved: true}); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer h.stop()
	ctx := context.Background()
	for _, c := range []struct {
		amount int64
		cur    string
		want   error
	}{{0, "KRW", ErrBadAmount}, {-1, "KRW", ErrBadAmount}, {MaxAmountMinor + 1, "KRW", ErrBadAmount}, {100, "XYZ", ErrCurrency}, {100, "", ErrCurrency}, {100, "KRWX", ErrCurrency}} {
		if _, err := h.e.Create(ctx, c.amount, c.cur); !errors.Is(err, c.want) {
			t.Errorf("Create(%d, %q) = %v, want %v", c.amount, c.cur, err, c.want)
		}
	}
	if _, ok := h.e.Waiting(ctx); ok {
		t.Fatal("a rejected Create left a waiting sale")
	}
	// A scan with no sale waiting is ignored.
	if _, ok, err := h.e.Scan(ctx, "281234567890123456"); ok || err != nil {
		t.Fatalf("scan without sale: ok=%v err=%v", ok, err)
	}
	// An unknown code declines locally with a reason and never reaches the outbox.
	s, _ := h.e.Create(ctx, 100, "JPY")
	s, _, _ = h.e.Scan(ctx, "not a payment code 12345")
	if s.Status != StatusDeclined || s.Reason == "" || strings.Contains(s.Reason, "12345") && !strings.Contains(s.MaskedCode, "2345") {
		t.Fatalf("unknown code: %+v", s)
	}
	if strings.Contains(s.Reason, "not a payment code") {
		t.Fatalf("reason leaks the code: %q", s.Reason)
	}
	if d, _, _ := h.st.OutboxStats(); d != 0 {
		t.Fatal("declined code reached the outbox")
	}
	// Busy and cancel.
	w, _ := h.e.Create(ctx, 100, "JPY")
	if _, err := h.e.Create(ctx, 100, "JPY"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second waiting sale: %v", err)
	}
	if c, err := h.e.Cancel(ctx, w.ID); err != nil || c.Status != StatusCancelled {
		t.Fatalf("Cancel = %+v %v", c, err)
	}
	if _, err := h.e.Cancel(ctx, w.ID); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := h.e.Cancel(ctx, "0190b7a4-0000-7000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
}

func TestInDoubtThenLateResultAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	h := newHarness(t, path, time.Second)
	ctx := context.Background()
	s, _ := h.e.Create(ctx, 1500, "HKD")
	h.e.Scan(ctx, "134567890123456789")
	deadline := time.Now().Add(20 * time.Second)
	for h.mustGet(s.ID).Status != StatusInDoubt && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := h.mustGet(s.ID); got.Status != StatusInDoubt {
		t.Fatalf("status %s, want in_doubt", got.Status)
	}
	// The request stays queued for resending with the same key.
	if d, _, _ := h.st.OutboxStats(); d != 1 {
		t.Fatalf("outbox depth %d, want 1", d)
	}
	// A waiting sale and the in-doubt one survive a restart.
	w, _ := h.e.Create(ctx, 700, "HKD")
	h.stop()
	h = newHarness(t, path, time.Minute)
	defer h.stop()
	if got, ok := h.e.Waiting(ctx); !ok || got.ID != w.ID {
		t.Fatalf("waiting sale after restart: %+v %v", got, ok)
	}
	h.e.HandleResult(ctx, Result{Key: s.ID, Approved: false, Reason: "insufficient balance"})
	got := h.mustGet(s.ID)
	if got.Status != StatusDeclined || got.Reason != "insufficient balance" {
		t.Fatalf("late result: %+v", got)
	}
	if d, _, _ := h.st.OutboxStats(); d != 0 {
		t.Fatalf("outbox depth %d after late result", d)
	}
}

func TestNewIDIsTimeOrderedUUIDv7(t *testing.T) {
	a := newID(time.UnixMilli(1_700_000_000_000))
	b := newID(time.UnixMilli(1_700_000_000_001))
	if !ValidID(a) || !ValidID(b) || a[14] != '7' || !(a < b) {
		t.Fatalf("ids %s %s", a, b)
	}
	for _, bad := range []string{"", "x", strings.Repeat("g", 36), "0190b7a4-0000-7000-8000-00000000000Z"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}
