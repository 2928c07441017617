package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/pgtest"
	wsync "github.com/walletless/walletless/sync"
)

// openPG migrates a fresh database of srv and opens a PGLedger on it.
func openPG(t *testing.T, srv *pgtest.Server) (*PGLedger, string) {
	t.Helper()
	url := srv.NewDB()
	if _, err := Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	l, err := OpenPG(context.Background(), PGConfig{URL: url, RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, url
}

// TestPGLedger runs the bbolt ledger's behaviour tests on PostgreSQL, then what only
// a shared database has: several deciders racing for one key, migrations, an outage.
func TestPGLedger(t *testing.T) {
	srv := pgtest.Start(t)

	t.Run("kinds", func(t *testing.T) {
		l, _ := openPG(t, srv)
		testKinds(t, newTestGatewayOn(t, l))
	})
	t.Run("reconcile", func(t *testing.T) {
		l, _ := openPG(t, srv)
		testReconcile(t, newTestGatewayOn(t, l))
	})
	t.Run("same answers and ledger as bbolt", func(t *testing.T) {
		pl, _ := openPG(t, srv)
		bl, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
		if err != nil {
			t.Fatal(err)
		}
		defer bl.Close()
		pg, bb := newTestGatewayOn(t, pl), newTestGatewayOn(t, bl)
		for _, s := range append(kindSteps(), reconcileSteps()...) {
			a, _ := send(t, pg, s.device, s.kind, s.msg)
			b, _ := send(t, bb, s.device, s.kind, s.msg)
			if a.Status != b.Status || a.Reason != b.Reason || a.Key != b.Key {
				t.Errorf("%s: postgres %s %q, bbolt %s %q", s.name, a.Status, a.Reason, b.Status, b.Reason)
			}
		}
		strip := func(es []Entry) string {
			var buf bytes.Buffer
			for _, e := range es {
				e.DecidedAt, e.ReversedAt = time.Time{}, time.Time{}
				fmt.Fprintf(&buf, "%+v\n", e)
			}
			return buf.String()
		}
		pe, be := collect(t, pl.ForEach), collect(t, bl.ForEach)
		if strip(pe) != strip(be) {
			t.Errorf("ledgers differ:\npostgres\n%s\nbbolt\n%s", strip(pe), strip(be))
		}
		pt, _ := pl.Totals()
		bt, _ := bl.Totals()
		if fmt.Sprint(pt) != fmt.Sprint(bt) {
			t.Errorf("totals differ: postgres %+v, bbolt %+v", pt, bt)
		}
		pb, bb2 := collect(t, pl.ForEachBatch), collect(t, bl.ForEachBatch)
		if len(pb) != len(bb2) || len(pb) == 0 {
			t.Fatalf("batches: postgres %d, bbolt %d", len(pb), len(bb2))
		}
		for i := range pb {
			if pb[i].Key != bb2[i].Key || pb[i].Status != bb2[i].Status || pb[i].Reason != bb2[i].Reason || fmt.Sprint(pb[i].Totals) != fmt.Sprint(bb2[i].Totals) {
				t.Errorf("batch %d: postgres %+v, bbolt %+v", i, pb[i], bb2[i])
			}
		}
	})
	t.Run("one key many deciders", func(t *testing.T) {
		_, url := openPG(t, srv)
		testOneKeyManyDeciders(t, url)
	})
	t.Run("concurrent batches", func(t *testing.T) {
		_, url := openPG(t, srv)
		testConcurrentDeciders(t, url)
	})
	t.Run("NUL in a device's text", func(t *testing.T) {
		l, _ := openPG(t, srv)
		g := newTestGatewayOn(t, l)
		if res, _ := send(t, g, "d1", wsync.KindPayment, sale("d1", "k1", 100, "KRW", t0)); res.Status != wsync.ResultApproved {
			t.Fatalf("sale: %+v", res)
		}
		raw := []byte(`{"v":1,"key":"k1","device":"d1","amount_minor":100,"currency":"KRW","created_at":"2026-01-01T00:00:00Z","reason":"bad\u0000byte"}`)
		res, ok := send(t, g, "d1", wsync.KindReversal, raw)
		if !ok || res.Status != wsync.ResultReversed {
			t.Fatalf("reversal with a NUL in its reason: %+v %v", res, ok)
		}
		es := collect(t, l.ForEach)
		if len(es) != 1 || strings.ContainsRune(es[0].Reason, 0) || !strings.Contains(es[0].Reason, "bad\uFFFDbyte") {
			t.Fatalf("stored %+v", es)
		}
	})
	t.Run("migrations", func(t *testing.T) { testMigrations(t, srv) })
	t.Run("outage", func(t *testing.T) { testOutage(t, srv) })
}

func collect[T any](t *testing.T, each func(func(T) error) error) []T {
	t.Helper()
	var out []T
	if err := each(func(v T) error { out = append(out, v); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// testOneKeyManyDeciders: for each of 20 keys, 16 goroutines on four ledgers (four
// processes' pools) send the same sale at once; each key is decided once and every
// answer is the stored one.
func testOneKeyManyDeciders(t *testing.T, url string) {
	const (
		procs   = 4
		workers = 16
		keys    = 20
	)
	var locs []*Local
	for range procs {
		l, err := OpenPG(context.Background(), PGConfig{URL: url, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		locs = append(locs, NewLocal(l, Rules{MaxAge: -1}, nil))
	}
	for k := range keys {
		key := fmt.Sprintf("one-%02d", k)
		answers := make([]Answer, workers)
		var wg stdsync.WaitGroup
		start := make(chan struct{})
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := sale("d1", key, 100, "KRW", t0)
				<-start
				a, err := locs[w%procs].Apply(context.Background(), []Message{{Kind: wsync.KindPayment, Device: "d1", Key: key, Msg: &req}})
				if err != nil {
					t.Error(err)
					return
				}
				answers[w] = a[0]
			}()
		}
		close(start)
		wg.Wait()
		fresh := 0
		for _, a := range answers {
			if a.Fresh {
				fresh++
			}
			if !a.Result.DecidedAt.Equal(answers[0].Result.DecidedAt) || a.Result.Status != wsync.ResultApproved {
				t.Errorf("%s: answers differ: %+v and %+v", key, a.Result, answers[0].Result)
			}
		}
		if fresh != 1 {
			t.Errorf("%s decided %d times by %d deciders, want once", key, fresh, workers)
		}
	}
}

// testConcurrentDeciders: four ledgers (four posgw processes' pools) and 32
// goroutines send the same sales, each in its own order within batches, and a
// refund of one of them; every key is decided once, every answer is the stored one.
func testConcurrentDeciders(t *testing.T, url string) {
	const (
		procs   = 4
		workers = 32
		keys    = 20
	)
	var stores []*PGLedger
	for range procs {
		l, err := OpenPG(context.Background(), PGConfig{URL: url, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		stores = append(stores, l)
	}
	type got struct {
		res   wsync.PaymentResult
		fresh bool
	}
	results := make([][]got, workers)
	var wg stdsync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loc := NewLocal(stores[w%procs], Rules{MaxAge: -1}, nil)
			var msgs []Message
			for i := range keys {
				k := (i*7 + w) % keys // each worker its own order: lock orders cross
				req := sale("d1", fmt.Sprintf("k%02d", k), int64(1000+k), "KRW", t0)
				msgs = append(msgs, Message{Kind: wsync.KindPayment, Device: "d1", Key: req.Key, Msg: &req})
			}
			ref := wsync.RefundRequest{V: 1, Key: "r1", Device: "d1", OriginalKey: "k03", AmountMinor: 1003, Currency: "KRW", CreatedAt: t0}
			msgs = append(msgs, Message{Kind: wsync.KindRefund, Device: "d1", Key: "r1", Msg: &ref})
			answers, err := loc.Apply(context.Background(), msgs)
			if err != nil {
				errs <- err
				return
			}
			for _, a := range answers {
				results[w] = append(results[w], got{a.Result, a.Fresh})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fresh := map[string]int{}
	first := map[string]wsync.PaymentResult{}
	for _, rs := range results {
		for _, g := range rs {
			if g.fresh {
				fresh[g.res.Key]++
			}
			if f, ok := first[g.res.Key]; ok && (f.Status != g.res.Status || !f.DecidedAt.Equal(g.res.DecidedAt)) {
				t.Errorf("%s answered %s at %s and %s at %s", g.res.Key, f.Status, f.DecidedAt, g.res.Status, g.res.DecidedAt)
			}
			first[g.res.Key] = g.res
		}
	}
	if len(first) != keys+1 {
		t.Fatalf("%d keys answered, want %d", len(first), keys+1)
	}
	for k := range first {
		if fresh[k] != 1 {
			t.Errorf("%s decided %d times, want once", k, fresh[k])
		}
	}
	es := collect(t, stores[0].ForEach)
	if len(es) != keys+1 {
		t.Fatalf("%d entries, want %d", len(es), keys+1)
	}
	for _, e := range es {
		if e.Requests != workers {
			t.Errorf("%s: %d requests counted, want %d", e.Key, e.Requests, workers)
		}
		if e.Key == "k03" && e.RefundedMinor != 1003 {
			t.Errorf("k03 refunded %d, want 1003 once", e.RefundedMinor)
		}
	}
}

// testMigrations: a fresh database is refused until migrated; migrating again is a
// no-op; a schema newer than this posgw's is refused by both OpenPG and Migrate.
func testMigrations(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	url := srv.NewDB()
	if _, err := OpenPG(ctx, PGConfig{URL: url}); !errors.Is(err, ErrSchemaMissing) || !strings.Contains(err.Error(), "posgw migrate") {
		t.Fatalf("fresh database: %v, want ErrSchemaMissing naming posgw migrate", err)
	}
	applied, err := Migrate(ctx, url)
	if err != nil || len(applied) != SchemaVersion() || applied[0] != 1 {
		t.Fatalf("first migrate: %v %v", applied, err)
	}
	applied, err = Migrate(ctx, url)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate: %v %v, want nothing applied", applied, err)
	}
	l, err := OpenPG(ctx, PGConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	srv.Exec(url, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')`, SchemaVersion()+1)
	if _, err := OpenPG(ctx, PGConfig{URL: url}); !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("newer schema: %v, want ErrSchemaNewer", err)
	}
	if _, err := Migrate(ctx, url); !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("migrate on a newer schema: %v, want ErrSchemaNewer", err)
	}
}

// logWatch is a slog handler's output that a test can wait on.
type logWatch struct {
	mu  stdsync.Mutex
	buf bytes.Buffer
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *logWatch) has(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.buf.String(), s)
}

// testOutage: with the database down, Apply neither answers nor returns; it waits,
// and once the database is back it stores and answers, once.
func testOutage(t *testing.T, srv *pgtest.Server) {
	var logs logWatch
	url := srv.NewDB()
	if _, err := Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	l, err := OpenPG(context.Background(), PGConfig{URL: url, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	loc := NewLocal(l, Rules{MaxAge: -1}, nil)
	srv.Stop()
	stopped := true
	defer func() {
		if stopped {
			srv.StartAgain()
		}
	}()
	req := sale("d1", "k1", 500, "KRW", t0)
	done := make(chan []Answer, 1)
	go func() {
		a, err := loc.Apply(context.Background(), []Message{{Kind: wsync.KindPayment, Device: "d1", Key: "k1", Msg: &req}})
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	waitUntil(t, "the ledger reports the database unavailable", func() bool { return logs.has("ledger database unavailable") })
	select {
	case a := <-done:
		t.Fatalf("answered while the database was down: %+v", a)
	default:
	}
	srv.StartAgain()
	stopped = false
	a := <-done
	if len(a) != 1 || a[0].Result.Status != wsync.ResultApproved || !a[0].Fresh {
		t.Fatalf("after the outage: %+v", a)
	}
	if !logs.has("ledger database works again") {
		t.Error("the end of the outage was not logged")
	}
	if es := collect(t, l.ForEach); len(es) != 1 || es[0].Requests != 1 {
		t.Fatalf("ledger after the outage: %+v", es)
	}
}

var waitLimit = 60 * time.Second

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
