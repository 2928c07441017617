package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/pgtest"
	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// startPGGateways runs n gateways, each with its own connection pool as separate
// posgw processes have, on the PostgreSQL ledger at url, in clean sessions.
func startPGGateways(t testing.TB, brokerURL, url string, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var gws []*gateway.Gateway
	logs := new(logBuffer)
	for i := 0; i < n; i++ {
		l, err := gateway.OpenPG(context.Background(), gateway.PGConfig{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		gw, err := gateway.New(gateway.Config{BrokerURL: brokerURL, Username: "posgw", Password: password,
			ClientID: fmt.Sprintf("posgw-pg-%d", i), Ledger: l,
			Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, gw)
		wg.Add(1)
		go func() { defer wg.Done(); gw.Run(ctx) }()
	}
	for _, gw := range gws {
		waitFor(t, "posgw subscribed", 30*time.Second, gw.Ready)
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// BenchmarkPGSaleRoundTrip is BenchmarkSaleRoundTrip with posgw on PostgreSQL: one
// sale at a time from its commit in the device's bbolt outbox until its result is
// applied and the entry durably marked synced, through mosquitto (deploy file,
// loopback), a posgw worker and a PostgreSQL commit (pgtest's server, fsync on).
func BenchmarkPGSaleRoundTrip(b *testing.B) {
	pg := pgtest.Start(b)
	url := pg.NewDB()
	if _, err := gateway.Migrate(context.Background(), url); err != nil {
		b.Fatal(err)
	}
	m := newMosquitto(b, mosqOpts{persistence: true, users: []string{"dev-rt"}})
	startPGGateways(b, m.URL(), url, 1)
	st, err := store.Open(filepath.Join(b.TempDir(), "posd.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ob := ackOutbox{storeOutbox{st}, make(chan int, 1024)}
	d := newTestDevice(b, filepath.Join(b.TempDir(), "unused.db"), wsync.Config{
		BrokerURL: m.URL(), DeviceID: "dev-rt", Username: "dev-rt", Password: password, Outbox: ob,
	})
	link, err := wsync.NewLink(wsync.Config{BrokerURL: m.URL(), DeviceID: "dev-rt", Username: "dev-rt", Password: password,
		Outbox: ob, OnResults: d.linkOnResults(), Heartbeat: -1})
	if err != nil {
		b.Fatal(err)
	}
	d.link = link
	stop := d.run()
	defer stop()
	waitFor(b, "online", 20*time.Second, link.Online)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msg := salePayload("dev-rt", i)
		if _, err := st.PutSale(saleKey("dev-rt", i), msg, func(uint64) ([]byte, error) { return []byte("{}"), nil }); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		link.Kick()
		select {
		case <-ob.acked:
		case <-time.After(30 * time.Second):
			b.Fatal("no result within 30s")
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}
