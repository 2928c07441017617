package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/pgtest"
	wsync "github.com/walletless/walletless/sync"
)

// BenchmarkDecisions measures new-key decisions per second through Local.Apply: the
// bbolt ledger (one process) beside PostgreSQL with 1, 2 and 4 workers on one
// database, each worker its own connection pool as a posgw process has. "batch=1" is
// one sale per transaction (a lone sale: its time per op is the round trip through
// the ledger, commit and fsync included); "batch=64" is a worker under load, which
// groups what arrived together into one transaction. The PostgreSQL server is the
// tests' own (pgtest: Debian's postgresql, default settings, fsync on) on the same
// machine as the workers.
func BenchmarkDecisions(b *testing.B) {
	srv := pgtest.Start(b)
	pgURL := func(b *testing.B) string {
		url := srv.NewDB()
		if _, err := Migrate(context.Background(), url); err != nil {
			b.Fatal(err)
		}
		return url
	}
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("bbolt/workers=1/batch=%d", batch), func(b *testing.B) {
			l, err := OpenLedger(filepath.Join(b.TempDir(), "posgw.db"), false)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			benchDecisions(b, []Store{l}, batch)
		})
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("postgres/workers=%d/batch=%d", workers, batch), func(b *testing.B) {
				url := pgURL(b)
				var stores []Store
				for range workers {
					l, err := OpenPG(context.Background(), PGConfig{URL: url, MaxConns: 2})
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					stores = append(stores, l)
				}
				benchDecisions(b, stores, batch)
			})
		}
	}
}

var benchRun atomic.Int64

// benchDecisions decides b.N new keys, spread over one goroutine per store, batch
// messages per transaction.
func benchDecisions(b *testing.B, stores []Store, batch int) {
	run := benchRun.Add(1)
	var next atomic.Int64
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	b.ResetTimer()
	start := time.Now()
	var wg stdsync.WaitGroup
	for w, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loc := NewLocal(st, Rules{MaxAge: -1}, nil)
			dev := fmt.Sprintf("dev-%d-%d", run, w)
			msgs := make([]Message, 0, batch)
			for {
				first := next.Add(int64(batch)) - int64(batch)
				if first >= int64(b.N) {
					return
				}
				msgs = msgs[:0]
				for i := first; i < min(first+int64(batch), int64(b.N)); i++ {
					key := fmt.Sprintf("%08x-0000-7000-8000-%012d", run, i)
					req := &wsync.PaymentRequest{V: 1, Key: key, Device: dev, AmountMinor: 1000 + i%5000, Currency: "KRW",
						Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", CreatedAt: at, Batch: "B1"}
					msgs = append(msgs, Message{Kind: wsync.KindPayment, Device: dev, Key: key, Msg: req})
				}
				answers, err := loc.Apply(context.Background(), msgs)
				if err != nil {
					b.Error(err)
					return
				}
				for _, a := range answers {
					if !a.Fresh {
						b.Errorf("%s not decided fresh", a.Result.Key)
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
	if pl, ok := stores[0].(*PGLedger); ok {
		// The ledger's size on disk per entry, indexes included (meaningful for large
		// b.N: a table's first pages are mostly empty).
		var size, n int64
		err := pl.pool.QueryRow(context.Background(), `SELECT pg_total_relation_size('entries'), count(*) FROM entries`).Scan(&size, &n)
		if err == nil && n > 0 {
			b.ReportMetric(float64(size)/float64(n), "db_bytes/entry")
		}
	}
}
