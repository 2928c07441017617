package payment

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
)

// Codes that match the built-in wallet rules.
const (
	alipay  = "281234567890123456"
	wechat  = "134567890123456789"
	alipay2 = "281234567890123457"
)

// wire is the test's outbox encoding: kind, key and the message.
type wire struct {
	Kind string          `json:"kind"`
	Key  string          `json:"key"`
	Msg  json.RawMessage `json:"msg"`
}

type clock struct {
	mu stdsync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t        *testing.T
	path     string
	st       *store.Store
	e        *Engine
	cancel   context.CancelFunc
	done     chan error
	kicks    chan struct{}
	finished chan Sale
	clock    *clock
	online   *stdsync.Mutex
	isOnline bool
	cfg      func(*Config)
}

func newHarness(t *testing.T, path string, timeout time.Duration, opts ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, path: path, clock: &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}, online: new(stdsync.Mutex), isOnline: true}
	h.start(timeout, opts...)
	return h
}

func (h *harness) start(timeout time.Duration, opts ...func(*Config)) {
	t := h.t
	t.Helper()
	st, err := store.Open(h.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.st = st
	h.kicks = make(chan struct{}, 1000)
	h.finished = make(chan Sale, 1000)
	h.done = make(chan error, 1)
	cfg := Config{
		Store: st,
		EncodeOutbox: func(m Message) ([]byte, error) {
			raw, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			return json.Marshal(wire{Kind: m.MessageKind(), Key: m.MessageKey(), Msg: raw})
		},
		Kick:         func() { h.kicks <- struct{}{} },
		Finished:     func(s Sale) { h.finished <- s },
		Online:       func() bool { h.online.Lock(); defer h.online.Unlock(); return h.isOnline },
		AuthTimeout:  timeout,
		QueryTimeout: timeout,
		Now:          h.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.e, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.e.Run(ctx) }()
	<-h.e.started
}

func (h *harness) setOnline(v bool) { h.online.Lock(); h.isOnline = v; h.online.Unlock() }

// stop stops the engine and closes the store. Every state change is one bbolt
// transaction, so stopping between requests leaves exactly what SIGKILL would.
func (h *harness) stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.st.Close()
}

func (h *harness) restart(timeout time.Duration, opts ...func(*Config)) {
	h.stop()
	h.start(timeout, opts...)
}

func (h *harness) mustGet(id string) Sale {
	h.t.Helper()
	s, err := h.e.Get(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// outbox lists the outbox as "kind:key" in FIFO order.
func (h *harness) outbox() []string {
	h.t.Helper()
	es, err := h.st.Peek(1<<20, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		var w wire
		if err := json.Unmarshal(e.Data, &w); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, w.Kind+":"+w.Key)
	}
	return out
}

func (h *harness) outboxKinds(id string) []string {
	var out []string
	for _, e := range h.outbox() {
		if k, key, _ := strings.Cut(e, ":"); key == id {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// waitStatus advances nothing; it polls until the sale reaches want (the engine's
// ticker runs every 250ms). The timeout is only a failure guard.
func (h *harness) waitStatus(id string, want Status) Sale {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := h.mustGet(id); s.Status == want {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("sale %s is %s, want %s", id, h.mustGet(id).Status, want)
	return Sale{}
}

func (h *harness) sale(amount int64, cur, code string) Sale {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.e.Create(ctx, amount, cur)
	if err != nil {
		h.t.Fatal(err)
	}
	s, ok, err := h.e.Scan(ctx, code)
	if err != nil || !ok {
		h.t.Fatalf("Scan: ok=%v err=%v", ok, err)
	}
	return s
}

func (h *harness) result(key, kind, status, reason string) {
	h.t.Helper()
	if err := h.e.HandleResult(context.Background(), Result{Key: key, Kind: kind, Status: status, Reason: reason}); err != nil {
		h.t.Fatal(err)
	}
}

func eq(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestSaleApproved(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer h.stop()
	ctx := context.Background()
	s, err := h.e.Create(ctx, 12000, "krw")
	if err != nil || s.Status != StatusWaitingForCode || s.Currency != "KRW" || !ValidID(s.ID) || s.Order == 0 || s.ClockUnsynced {
		t.Fatalf("Create = %+v, %v", s, err)
	}
	s, ok, err := h.e.Scan(ctx, alipay)
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
	var w wire
	json.Unmarshal(es[0].Data, &w)
	var a AuthRequest
	json.Unmarshal(w.Msg, &a)
	if w.Kind != KindPayment || a.Key != s.ID || a.Code != alipay || a.AmountMinor != 12000 {
		t.Fatalf("outbox request %+v", a)
	}
	h.result(s.ID, "", ResultApproved, "")
	got := h.mustGet(s.ID)
	if got.Status != StatusApproved || !got.Synced || got.BatchID == "" {
		t.Fatalf("after result: %+v", got)
	}
	if f := <-h.finished; f.ID != s.ID || f.Status != StatusApproved {
		t.Fatalf("finished %+v", f)
	}
	if d, _, _ := h.st.OutboxStats(); d != 0 {
		t.Fatalf("outbox depth %d after result", d)
	}
	// A duplicate result changes nothing and prints nothing.
	h.result(s.ID, "", ResultDeclined, "late dup")
	if got := h.mustGet(s.ID); got.Status != StatusApproved {
		t.Fatalf("duplicate result changed status to %s", got.Status)
	}
	select {
	case f := <-h.finished:
		t.Fatalf("duplicate result finished again: %+v", f)
	default:
	}
	// Unknown key and unknown kind: ignored.
	h.result("nope", "", ResultApproved, "")
	h.result(s.ID, "bogus", ResultApproved, "")
	b, _ := h.e.CurrentBatch(ctx)
	if len(b.Totals) != 1 || b.Totals[0].SalesCount != 1 || b.Totals[0].SalesMinor != 12000 {
		t.Fatalf("batch totals after a duplicate: %+v", b.Totals)
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
	// A scan with no sale waiting is refused with a clear error.
	if _, ok, err := h.e.Scan(ctx, alipay); ok || !errors.Is(err, ErrNoSale) {
		t.Fatalf("scan without sale: ok=%v err=%v", ok, err)
	}
	// An unknown code declines locally with a reason, and only its audit record
	// (masked) reaches the outbox.
	s, _ := h.e.Create(ctx, 100, "JPY")
	s, _, _ = h.e.Scan(ctx, "not a payment code 12345")
	if s.Status != StatusDeclined || s.Reason == "" {
		t.Fatalf("unknown code: %+v", s)
	}
	if strings.Contains(s.Reason, "not a payment code") {
		t.Fatalf("reason leaks the code: %q", s.Reason)
	}
	if got := h.outboxKinds(s.ID); !eq(got, []string{KindAttempt}) {
		t.Fatalf("declined code: outbox %v, want only the attempt", got)
	}
	es, _ := h.st.Peek(10, nil)
	if strings.Contains(string(es[0].Data), "not a payment code") {
		t.Fatal("the attempt record carries the full code")
	}
	if s.Synced {
		t.Fatal("sale synced before its attempt was recorded")
	}
	h.result(s.ID, KindAttempt, ResultRecorded, "")
	if got := h.mustGet(s.ID); !got.Synced || len(h.outbox()) != 0 {
		t.Fatalf("after the attempt was recorded: %+v, outbox %v", got, h.outbox())
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
	if _, _, err := h.e.ScanFor(ctx, w.ID, alipay); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("scan for a cancelled sale: %v", err)
	}
	if _, err := h.e.Cancel(ctx, "0190b7a4-0000-7000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
}

func TestSecondScanWhileAuthorizing(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer h.stop()
	ctx := context.Background()
	s := h.sale(500, "KRW", alipay)
	for _, f := range []func() error{
		func() error { _, _, err := h.e.Scan(ctx, wechat); return err },
		func() error { _, _, err := h.e.ScanFor(ctx, s.ID, wechat); return err },
	} {
		if err := f(); !errors.Is(err, ErrAuthorizing) {
			t.Fatalf("second scan: %v, want ErrAuthorizing", err)
		}
	}
	if got := h.outbox(); len(got) != 1 {
		t.Fatalf("second scan changed the outbox: %v", got)
	}
	if _, err := h.e.Cancel(ctx, s.ID); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("cancel while authorizing: %v", err)
	}
}

func TestOneTimeCodeUsedTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	h := newHarness(t, path, time.Minute)
	defer func() { h.stop() }()
	ctx := context.Background()
	s := h.sale(500, "KRW", alipay)
	h.result(s.ID, "", ResultApproved, "")
	h.restart(time.Minute) // the memory of used codes is durable
	w, _ := h.e.Create(ctx, 700, "KRW")
	if got, ok, err := h.e.Scan(ctx, alipay); ok || !errors.Is(err, ErrCodeReused) || got.Status != StatusWaitingForCode {
		t.Fatalf("reused code: %+v ok=%v err=%v", got, ok, err)
	}
	if got := h.mustGet(w.ID); got.Status != StatusWaitingForCode || !strings.Contains(got.Reason, "already used") {
		t.Fatalf("sale after a reused code: %+v", got)
	}
	if len(h.outbox()) != 0 {
		t.Fatalf("reused code reached the outbox: %v", h.outbox())
	}
	// A fresh code pays the same sale.
	if got, ok, err := h.e.Scan(ctx, alipay2); !ok || err != nil || got.Status != StatusAuthorizing || got.ID != w.ID {
		t.Fatalf("fresh code: %+v %v %v", got, ok, err)
	}
	// After the reuse window, the hash is forgotten.
	h.clock.Add(25 * time.Hour)
	if err := h.e.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	h.e.CloseBatch(ctx)
}

func TestInDoubtResolvedByQuery(t *testing.T) {
	for _, c := range []struct {
		name    string
		answers []Result // after the query is queued; Key filled in
		want    Status
		outbox  []string
	}{
		{"query approved", []Result{{Kind: KindQuery, Status: ResultApproved}}, StatusApproved, nil},
		{"query declined", []Result{{Kind: KindQuery, Status: ResultDeclined, Reason: "no funds"}}, StatusDeclined, nil},
		{"late payment result", []Result{{Status: ResultApproved}}, StatusApproved, nil},
		{"query unknown then reversal", []Result{{Kind: KindQuery, Status: ResultUnknown}}, StatusReversalPending, []string{KindReversal}},
		{"reversal confirmed", []Result{{Kind: KindQuery, Status: ResultUnknown}, {Kind: KindReversal, Status: ResultReversed}}, StatusReversed, nil},
		{"reversal refused", []Result{{Kind: KindQuery, Status: ResultUnknown}, {Kind: KindReversal, Status: ResultDeclined}}, StatusReversalFailed, nil},
		{"late approval after reversal is ignored", []Result{{Kind: KindQuery, Status: ResultUnknown}, {Status: ResultApproved}}, StatusReversalPending, []string{KindReversal}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Second)
			defer h.stop()
			s := h.sale(1500, "HKD", wechat)
			h.clock.Add(2 * time.Second)
			h.waitStatus(s.ID, StatusInDoubt)
			if got := h.outboxKinds(s.ID); !eq(got, []string{KindPayment, KindQuery}) {
				t.Fatalf("in doubt: outbox %v, want the payment (resent) and a query", got)
			}
			for _, r := range c.answers {
				h.result(s.ID, r.Kind, r.Status, r.Reason)
			}
			got := h.mustGet(s.ID)
			if got.Status != c.want {
				t.Fatalf("status %s (%s), want %s", got.Status, got.Reason, c.want)
			}
			if k := h.outboxKinds(s.ID); !eq(k, c.outbox) {
				t.Fatalf("outbox %v, want %v", k, c.outbox)
			}
			if got.Status == StatusReversalPending && !strings.Contains(got.Reason, "did not go through") {
				t.Fatalf("clerk not told: %q", got.Reason)
			}
		})
	}
}

func TestInDoubtQueryTimeout(t *testing.T) {
	deferKRW := func(c *Config) {
		c.Offline = Policies{ByScheme: map[string]OfflinePolicy{"alipay": {Action: Defer,
			MaxAmountMinor: map[string]int64{"KRW": 50_000}, MaxTotalMinor: map[string]int64{"KRW": 60_000}, MaxCount: 5, MaxAge: time.Hour}}}
	}
	t.Run("refuse queues a reversal", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Second)
		defer h.stop()
		s := h.sale(1500, "KRW", alipay)
		h.clock.Add(2 * time.Second)
		h.waitStatus(s.ID, StatusInDoubt)
		h.clock.Add(2 * time.Second)
		got := h.waitStatus(s.ID, StatusReversalPending)
		if k := h.outboxKinds(s.ID); !eq(k, []string{KindReversal}) {
			t.Fatalf("outbox %v", k)
		}
		if f := <-h.finished; f.Status != StatusReversalPending || got.Synced {
			t.Fatalf("finished %+v", f)
		}
	})
	t.Run("defer stores offline", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Second, deferKRW)
		defer h.stop()
		s := h.sale(1500, "KRW", alipay)
		h.clock.Add(2 * time.Second)
		h.waitStatus(s.ID, StatusInDoubt)
		h.clock.Add(2 * time.Second)
		h.waitStatus(s.ID, StatusStoredOffline)
		if k := h.outboxKinds(s.ID); !eq(k, []string{KindPayment}) {
			t.Fatalf("outbox %v, want the payment kept for forwarding", k)
		}
		h.result(s.ID, "", ResultApproved, "")
		if got := h.mustGet(s.ID); got.Status != StatusApproved || !got.Synced {
			t.Fatalf("forwarded: %+v", got)
		}
	})
}

func TestOfflinePolicy(t *testing.T) {
	policy := func(c *Config) {
		c.Offline = Policies{ByScheme: map[string]OfflinePolicy{"alipay": {Action: Defer,
			MaxAmountMinor: map[string]int64{"KRW": 50_000}, MaxTotalMinor: map[string]int64{"KRW": 70_000}, MaxCount: 2, MaxAge: time.Hour}}}
	}
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, policy)
	defer func() { h.stop() }()
	h.setOnline(false)

	// WeChat Pay has no policy: default refuse, with an audit record.
	s := h.sale(1000, "KRW", wechat)
	if s.Status != StatusRefused || !s.Offline || !strings.Contains(s.Reason, "ask for another method") {
		t.Fatalf("default policy: %+v", s)
	}
	if k := h.outboxKinds(s.ID); !eq(k, []string{KindAttempt}) {
		t.Fatalf("refused sale outbox %v", k)
	}
	// A refused code was not used: the customer may present it again once online.
	steps := []struct {
		amount int64
		code   string
		want   Status
		why    string
	}{
		{60_000, "281000000000000001", StatusRefused, "above the offline limit"},
		{40_000, "281000000000000002", StatusStoredOffline, ""},
		{40_000, "281000000000000003", StatusRefused, "total limit"},
		{20_000, "281000000000000004", StatusStoredOffline, ""},
		{100, "281000000000000005", StatusRefused, "too many"},
	}
	var stored []string
	for _, st := range steps {
		s := h.sale(st.amount, "KRW", st.code)
		if s.Status != st.want || !strings.Contains(s.Reason, st.why) {
			t.Fatalf("%d offline: %+v, want %s (%s)", st.amount, s, st.want, st.why)
		}
		if s.Status == StatusStoredOffline {
			stored = append(stored, s.ID)
		}
	}
	// The exposure survives a restart.
	h.restart(time.Minute, policy)
	h.setOnline(false)
	if s := h.sale(100, "KRW", "281000000000000006"); s.Status != StatusRefused {
		t.Fatalf("after restart the limits were forgotten: %+v", s)
	}
	// Max age flags the sale expired.
	h.clock.Add(2 * time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for !h.mustGet(stored[0]).Expired && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !h.mustGet(stored[0]).Expired {
		t.Fatal("stored sale past max age not flagged expired")
	}
	// Forwarded results release the exposure.
	h.result(stored[0], "", ResultApproved, "")
	h.result(stored[1], "", ResultDeclined, "expired code")
	if got := h.mustGet(stored[1]); got.Status != StatusDeclined || !strings.Contains(got.Reason, "after being stored offline") {
		t.Fatalf("declined after storing: %+v", got)
	}
	if s := h.sale(50_000, "KRW", "281000000000000007"); s.Status != StatusStoredOffline {
		t.Fatalf("exposure not released: %+v", s)
	}
	if st, _ := h.e.Stats(context.Background()); st.StoredOffline != 1 || st.Exposure["KRW"] != 50_000 || st.OpenBatch != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestRefunds(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer h.stop()
	ctx := context.Background()
	s := h.sale(10_000, "KRW", alipay)
	if _, err := h.e.Refund(ctx, s.ID, 100); !errors.Is(err, ErrNotRefundable) {
		t.Fatalf("refund of an authorizing sale: %v", err)
	}
	h.result(s.ID, "", ResultApproved, "")
	for _, c := range []struct {
		amount int64
		want   error
	}{{0, ErrBadAmount}, {-5, ErrBadAmount}, {10_001, ErrRefundTooLarge}} {
		if _, err := h.e.Refund(ctx, s.ID, c.amount); !errors.Is(err, c.want) {
			t.Fatalf("Refund(%d) = %v, want %v", c.amount, err, c.want)
		}
	}
	if _, err := h.e.Refund(ctx, "0190b7a4-0000-7000-8000-000000000000", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refund of unknown sale: %v", err)
	}
	r1, err := h.e.Refund(ctx, s.ID, 6_000)
	if err != nil || r1.Status != RefundPending || r1.SaleID != s.ID || r1.ID == s.ID {
		t.Fatalf("refund 1: %+v %v", r1, err)
	}
	if _, err := h.e.Refund(ctx, s.ID, 4_001); !errors.Is(err, ErrRefundTooLarge) {
		t.Fatalf("pending refunds count against the original: %v", err)
	}
	r2, err := h.e.Refund(ctx, s.ID, 4_000)
	if err != nil {
		t.Fatal(err)
	}
	if k := h.outboxKinds(r2.ID); !eq(k, []string{KindRefund}) {
		t.Fatalf("refund outbox %v", k)
	}
	h.result(r1.ID, KindRefund, ResultApproved, "")
	h.result(r2.ID, KindRefund, ResultDeclined, "too late")
	h.result(r2.ID, KindRefund, ResultApproved, "") // duplicate: ignored
	if got, _ := h.e.GetRefund(r2.ID); got.Status != RefundDeclined || !got.Synced {
		t.Fatalf("refund 2: %+v", got)
	}
	if got := h.mustGet(s.ID); got.RefundedMinor != 6_000 || len(got.Refunds) != 2 {
		t.Fatalf("sale after refunds: %+v", got)
	}
	b, _ := h.e.CurrentBatch(ctx)
	want := Total{Scheme: "alipay", Currency: "KRW", SalesCount: 1, SalesMinor: 10_000, RefundsCount: 1, RefundsMinor: 6_000, NetMinor: 4_000}
	if len(b.Totals) != 1 || b.Totals[0] != want {
		t.Fatalf("batch %+v, want %+v", b.Totals, want)
	}
}

func TestBatchClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	h := newHarness(t, path, time.Minute)
	defer func() { h.stop() }()
	ctx := context.Background()
	codes := []string{"281000000000000011", "281000000000000012", "134000000000000013"}
	curs := []string{"KRW", "KRW", "JPY"}
	for i, c := range codes {
		s := h.sale(int64(1000*(i+1)), curs[i], c)
		h.result(s.ID, "", ResultApproved, "")
	}
	pendingSale := h.sale(7, "KRW", "281000000000000014")
	h.restart(time.Minute) // running totals are durable
	cur, _ := h.e.CurrentBatch(ctx)
	if cur.Number != 1 || len(cur.Totals) != 2 || cur.Totals[0].Scheme != "alipay" || cur.Totals[0].SalesMinor != 3000 || cur.Totals[1].SalesMinor != 3000 {
		t.Fatalf("current batch %+v", cur)
	}
	// The sale still authorizing belongs to batch 1: the close waits for it.
	if _, err := h.e.CloseBatch(ctx); !errors.Is(err, ErrBatchBusy) {
		t.Fatalf("close with a sale authorizing: %v", err)
	}
	h.result(pendingSale.ID, "", ResultApproved, "")
	closed, err := h.e.CloseBatch(ctx)
	if err != nil || closed.Status != BatchClosed || closed.ID != cur.ID || closed.ClosedAt.IsZero() {
		t.Fatalf("close: %+v %v", closed, err)
	}
	if closed.Totals[0].SalesMinor != 3007 {
		t.Fatalf("closed batch lacks the sale approved before the close: %+v", closed.Totals)
	}
	if k := h.outboxKinds(closed.ID); !eq(k, []string{KindBatch}) {
		t.Fatalf("batch outbox %v", k)
	}
	next, _ := h.e.CurrentBatch(ctx)
	if next.Number != 2 || len(next.Totals) != 0 || next.ID == closed.ID {
		t.Fatalf("next batch %+v", next)
	}
	// A sale made after the close counts in the new batch.
	late := h.sale(7, "KRW", "281000000000000015")
	h.result(late.ID, "", ResultApproved, "")
	if next, _ = h.e.CurrentBatch(ctx); len(next.Totals) != 1 || next.Totals[0].SalesMinor != 7 || h.mustGet(late.ID).BatchID != next.ID {
		t.Fatalf("sale after the close: %+v", next.Totals)
	}
	h.result(closed.ID, KindBatch, ResultRecorded, "")
	if b, _ := h.e.GetBatch(closed.ID); !b.Synced || len(h.outboxKinds(closed.ID)) != 0 {
		t.Fatalf("batch after recorded: %+v", b)
	}
	z := ZReport(closed, "Demo Mart")
	for _, want := range []string{"Z REPORT  batch 1", "alipay", "wechatpay", "3000", "NET JPY 3000", "NET KRW 3007"} {
		if !strings.Contains(z, want) {
			t.Errorf("Z report lacks %q:\n%s", want, z)
		}
	}
}

func TestClockUnsyncedFlag(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	defer h.stop()
	h.clock.mu.Lock()
	h.clock.t = time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC)
	h.clock.mu.Unlock()
	a := h.sale(100, "KRW", alipay)
	h.clock.mu.Lock()
	h.clock.t = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	h.clock.mu.Unlock()
	b := h.sale(100, "KRW", wechat)
	if !a.ClockUnsynced || b.ClockUnsynced || !(a.Order < b.Order) {
		t.Fatalf("a=%+v b=%+v", a, b)
	}
}

func TestPruneSyncedSales(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, func(c *Config) { c.PruneAfter = 48 * time.Hour })
	defer h.stop()
	ctx := context.Background()
	old := h.sale(100, "KRW", alipay)
	h.result(old.ID, "", ResultApproved, "")
	unsynced := h.sale(100, "KRW", wechat) // still authorizing: never pruned
	now := h.clock.Now()
	h.clock.mu.Lock()
	h.clock.t = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	h.clock.mu.Unlock()
	badClock := h.sale(100, "KRW", "281000000000000099") // made before the clock was set
	h.result(badClock.ID, "", ResultApproved, "")
	h.clock.mu.Lock()
	h.clock.t = now
	h.clock.mu.Unlock()
	h.clock.Add(72 * time.Hour)
	young := h.sale(100, "KRW", alipay2)
	h.result(young.ID, "", ResultApproved, "")
	if err := h.e.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Get(old.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old synced sale not pruned: %v", err)
	}
	h.mustGet(unsynced.ID)
	h.mustGet(young.ID)
	if s := h.mustGet(badClock.ID); !s.ClockUnsynced || !s.Synced {
		t.Fatalf("sale with an unsynchronized clock: %+v", s)
	}
}

func TestNewIDIsTimeOrderedUUIDv7(t *testing.T) {
	a := newID(time.UnixMilli(1_700_000_000_000))
	b := newID(time.UnixMilli(1_700_000_000_001))
	if !ValidID(a) || !ValidID(b) || a[14] != '7' || !(a < b) {
		t.Fatalf("ids %s %s", a, b)
	}
	if at, ok := idTime(b); !ok || at.UnixMilli() != 1_700_000_000_001 {
		t.Fatalf("idTime = %v %v", at, ok)
	}
	for _, bad := range []string{"", "x", strings.Repeat("g", 36), "0190b7a4-0000-7000-8000-00000000000Z"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestAddMinorOverflow(t *testing.T) {
	if _, err := addMinor(1<<62, 1<<62); !errors.Is(err, ErrOverflow) {
		t.Fatal("overflow not detected")
	}
	if _, err := addMinor(-1<<62, -1<<62-1); !errors.Is(err, ErrOverflow) {
		t.Fatal("negative overflow not detected")
	}
	if s, err := addMinor(5, -3); s != 2 || err != nil {
		t.Fatal(s, err)
	}
}
