package payment

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
)

// benchEngine runs an engine on a real, fsynced bbolt file with the daemon's kind of
// outbox encoding (JSON of the message).
func benchEngine(b *testing.B, path string) (*Engine, *store.Store, func()) {
	b.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{
		Store: st,
		EncodeOutbox: func(m Message) ([]byte, error) {
			raw, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			return json.Marshal(wire{Kind: m.MessageKind(), Key: m.MessageKey(), Msg: raw})
		},
		AuthTimeout: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	<-e.started
	return e, st, func() { cancel(); <-done; st.Close() }
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func benchCode(i int) string { return fmt.Sprintf("28%016d", i) }

// BenchmarkScanToCommitted measures scan → committed (the Scan call returns once the
// sale and its outbox entry are fsynced), p50 and p99, beside the physical floor: a
// raw write + fdatasync of the same number of bytes to a file on the same disk, in
// the same run.
func BenchmarkScanToCommitted(b *testing.B) {
	dir := b.TempDir()
	e, st, stop := benchEngine(b, filepath.Join(dir, "posd.db"))
	defer stop()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	size := 0
	for i := 0; i < b.N; i++ {
		s, err := e.Create(ctx, int64(1000+i), "KRW")
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, ok, err := e.Scan(ctx, benchCode(i)); !ok || err != nil {
			b.Fatal(ok, err)
		}
		lat = append(lat, time.Since(t0))
		if size == 0 {
			st.View(func(tx *store.Tx) error {
				doc, _ := tx.Sale(s.ID)
				size = len(doc)
				return nil
			})
			es, _ := st.Peek(1, nil)
			size += len(es[0].Data)
		}
		if err := e.HandleResult(ctx, Result{Key: s.ID, Status: ResultApproved}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	floor, err := fdatasyncFloor(filepath.Join(dir, "floor"), size, len(lat))
	if err != nil {
		b.Fatal(err)
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(percentile(lat, 0.50)), "p50-µs")
	b.ReportMetric(us(percentile(lat, 0.99)), "p99-µs")
	b.ReportMetric(us(percentile(floor, 0.50)), "floor-p50-µs")
	b.ReportMetric(us(percentile(floor, 0.99)), "floor-p99-µs")
	b.ReportMetric(float64(size), "bytes/commit")
}

// fdatasyncFloor appends size bytes and fdatasyncs, n times, returning each latency.
func fdatasyncFloor(path string, size, n int) ([]time.Duration, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := fdatasync(f); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// BenchmarkBurst is a burst of complete sales (create, scan, approve: three fsynced
// commits each) as fast as one engine goroutine takes them.
func BenchmarkBurst(b *testing.B) {
	e, _, stop := benchEngine(b, filepath.Join(b.TempDir(), "posd.db"))
	defer stop()
	ctx := context.Background()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		s, err := e.Create(ctx, int64(1000+i), "KRW")
		if err != nil {
			b.Fatal(err)
		}
		if _, ok, err := e.Scan(ctx, benchCode(i)); !ok || err != nil {
			b.Fatal(ok, err)
		}
		if err := e.HandleResult(ctx, Result{Key: s.ID, Status: ResultApproved}); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(t0).Seconds()
	b.ReportMetric(float64(b.N)/el, "sales/s")
	b.ReportMetric(float64(3*b.N)/el, "commits/s")
}

// rssMB reads this process's resident set size.
func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return -1
}

// BenchmarkStoredSales fills a store with BENCH_STORED_SALES realistic sale records
// (default 100,000; set 1000000 for the million-sale figures) — one in a thousand still
// authorizing with its outbox entry — and then measures what must not scan every sale:
// the outbox head and depth, the open batch's totals, and a restart's recovery. It
// reports the bbolt file size and the process RSS per 100,000 sales.
func BenchmarkStoredSales(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_STORED_SALES")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(b.TempDir(), "posd.db")
	rss0 := rssMB()
	fillStart := time.Now()
	fillSales(b, path, n)
	fill := time.Since(fillStart)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	e, st, stop := benchEngine(b, path) // recovery reads the in-doubt index only
	recoverTime := time.Since(t0)
	defer stop()
	ctx := context.Background()
	if d, _, _ := st.OutboxStats(); d != n/1000 {
		b.Fatalf("outbox depth %d, want %d", d, n/1000)
	}
	b.Logf("%d sales filled in %v; file %.1f MB; restart recovery %v", n, fill.Round(time.Millisecond), float64(fi.Size())/1e6, recoverTime.Round(time.Microsecond))
	b.Run(fmt.Sprintf("outbox-head/sales=%d", n), func(b *testing.B) {
		for b.Loop() {
			if _, _, err := st.OutboxStats(); err != nil {
				b.Fatal(err)
			}
			if _, err := st.Peek(32, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("open-batch-totals/sales=%d", n), func(b *testing.B) {
		for b.Loop() {
			if bt, err := e.CurrentBatch(ctx); err != nil || len(bt.Totals) == 0 {
				b.Fatal(bt, err)
			}
		}
	})
	b.Run(fmt.Sprintf("footprint/sales=%d", n), func(b *testing.B) {
		for b.Loop() {
		}
		per := 100_000 / float64(n)
		b.ReportMetric(float64(fi.Size())/1e6*per, "file-MB/100k-sales")
		b.ReportMetric((rssMB()-rss0)*per, "rss-MB/100k-sales")
		b.ReportMetric(float64(recoverTime.Microseconds()), "recover-µs")
	})
}

// fillSales writes n approved, synced sale records the way the engine does, 10,000
// per transaction, with the batch's running totals; every thousandth sale is still
// authorizing with its payment request in the outbox.
func fillSales(b *testing.B, path string, n int) {
	b.Helper()
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	batch := &batchRecord{Batch: Batch{ID: newID(base), Number: 1, Status: BatchOpen, OpenedAt: base}}
	for start := 0; start < n; start += 10_000 {
		err := st.Update(func(tx *store.Tx) error {
			for i := start; i < start+10_000 && i < n; i++ {
				at := base.Add(time.Duration(i) * time.Second)
				r := &record{Sale: Sale{ID: newID(at), Status: StatusApproved, AmountMinor: int64(1000 + i%50_000), Currency: "KRW",
					Scheme: "alipay", Operator: "Ant Group (Alipay, AlipayHK and Alipay+ partner wallets)", MaskedCode: "…" + benchCode(i)[14:] + "#0123abcd",
					Order: uint64(i + 1), CreatedAt: at, UpdatedAt: at.Add(800 * time.Millisecond), BatchID: batch.ID}, CodeKind: "wallet"}
				if i%1000 == 999 {
					r.Status, r.BatchID = StatusAuthorizing, ""
					raw, _ := json.Marshal(AuthRequest{Key: r.ID, AmountMinor: r.AmountMinor, Currency: "KRW", Kind: "wallet", Scheme: "alipay", Code: benchCode(i), MaskedCode: r.MaskedCode, CreatedAt: at})
					seq, err := tx.Enqueue(raw)
					if err != nil {
						return err
					}
					r.PaySeq = seq
				} else {
					t := batch.total(r.Scheme, r.Currency)
					t.SalesCount++
					t.SalesMinor += r.AmountMinor
					t.NetMinor += r.AmountMinor
				}
				if err := putSale(tx, r); err != nil {
					return err
				}
			}
			if err := putBatch(tx, batch); err != nil {
				return err
			}
			return tx.PutMeta(metaOpenBatch, []byte(batch.ID))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
