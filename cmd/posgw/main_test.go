package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/pgtest"
	wsync "github.com/walletless/walletless/sync"
)

// TestFlagsRefused: combinations that must not start fail before anything is opened.
func TestFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-instances", "0"}, "-instances"},
		{[]string{"-ledger", "mysql://x"}, "postgres://"},
		{[]string{"-ledger-url", "http://127.0.0.1:7601"}, "not defined"},
		{[]string{"-ledger-listen", "127.0.0.1:7601"}, "not defined"},
		{[]string{"migrate"}, "needs -ledger"},
		{[]string{"migrate", "-ledger", "/tmp/x"}, "postgres://"},
		{[]string{"ledger", "-ledger", "ftp://x"}, "postgres://"},
		{[]string{"ledger", "-json", "-csv"}, "exclude"},
		{[]string{"ledger", "-totals", "-batches"}, "exclude"},
		{[]string{"ledger", "-data", filepath.Join(dir, "none")}, "no ledger"},
	} {
		err := run(context.Background(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

// fill decides a few sales, a refund, a reversal, an attempt and a batch close with
// awkward text (a formula-like reason, a comma, a quote) on l.
func fill(t *testing.T, l gateway.Store) {
	t.Helper()
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	sale := func(key string, amount int64) *wsync.PaymentRequest {
		return &wsync.PaymentRequest{V: 1, Key: key, Device: "shop-1", AmountMinor: amount, Currency: "KRW", Kind: "wallet",
			Scheme: "alipay", Code: "281234567890123456", CreatedAt: at, Batch: "B1"}
	}
	msgs := []gateway.Message{
		{Kind: wsync.KindPayment, Device: "shop-1", Key: "k1", Msg: sale("k1", 12000)},
		{Kind: wsync.KindPayment, Device: "shop-1", Key: "k2", Msg: sale("k2", 3400)},
		{Kind: wsync.KindPayment, Device: "shop-1", Key: "k3", Msg: sale("k3", 500)},
		{Kind: wsync.KindRefund, Device: "shop-1", Key: "r1", Msg: &wsync.RefundRequest{V: 1, Key: "r1", Device: "shop-1", OriginalKey: "k1",
			AmountMinor: 2000, Currency: "KRW", CreatedAt: at, Batch: "B1"}},
		{Kind: wsync.KindReversal, Device: "shop-1", Key: "k3", Msg: &wsync.ReversalRequest{V: 1, Key: "k3", Device: "shop-1",
			Reason: `=HYPERLINK("x"), "quoted"`}},
		{Kind: wsync.KindAttempt, Device: "shop-1", Key: "a1", Msg: &wsync.AttemptRecord{V: 1, Key: "a1", Device: "shop-1",
			AmountMinor: 100, Currency: "KRW", Outcome: wsync.AttemptRefusedOffline, Reason: "=1+2"}},
		{Kind: wsync.KindBatch, Device: "shop-1", Key: "B1", Msg: &wsync.BatchClose{V: 1, Key: "B1", Device: "shop-1",
			OpenedAt: at.Add(-time.Hour), ClosedAt: at.Add(time.Hour), Totals: []wsync.BatchTotal{
				{Scheme: "alipay", Currency: "KRW", SalesCount: 2, SalesMinor: 15400, RefundsCount: 1, RefundsMinor: 2000}}}},
	}
	answers, err := gateway.NewLocal(l, gateway.Rules{MaxAge: -1}, nil).Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if answers[6].Result.Status != wsync.ResultRecorded {
		t.Fatalf("batch close: %+v", answers[6].Result)
	}
}

// checkCSV runs posgw ledger with args and -csv and checks what an accountant's
// spreadsheet would read.
func checkCSV(t *testing.T, args ...string) {
	t.Helper()
	read := func(extra ...string) [][]string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append(append([]string{"ledger", "-csv"}, args...), extra...), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatalf("not CSV: %v\n%s", err, out.String())
		}
		return recs
	}
	sales := read()
	if len(sales) != 5 || strings.Join(sales[0][:5], ",") != "key,type,device,amount_minor,currency" {
		t.Fatalf("sales CSV: %q", sales)
	}
	byKey := map[string][]string{}
	for _, r := range sales[1:] {
		byKey[r[0]] = r
	}
	if r := byKey["k1"]; r[3] != "12000" || r[7] != "approved" || r[14] != "2000" || r[10] != "B1" {
		t.Errorf("k1 row: %q", r)
	}
	if r := byKey["k3"]; r[7] != "reversed" || r[8] != `reversed: =HYPERLINK("x"), "quoted"` {
		t.Errorf("k3 row: %q", r)
	}
	for _, r := range sales[1:] {
		for _, f := range r {
			if strings.HasPrefix(f, "=") || strings.Contains(f, "281234567890123456") {
				t.Errorf("unsafe field %q in %q", f, r)
			}
		}
	}
	if r := byKey["r1"]; r[1] != "refund" || r[13] != "k1" || r[3] != "2000" {
		t.Errorf("r1 row: %q", r)
	}
	totals := read("-totals")
	if len(totals) != 2 || strings.Join(totals[1], ",") != "shop-1,KRW,2,15400,1,2000,13400,0,1" {
		t.Errorf("totals CSV: %q", totals)
	}
	if b := read("-batches"); len(b) != 2 || b[1][0] != "B1" || b[1][4] != "recorded" {
		t.Errorf("batches CSV: %q", b)
	}
	if a := read("-attempts"); len(a) != 2 || a[1][0] != "a1" || a[1][2] != "100" || a[1][8] != "'=1+2" {
		t.Errorf("attempts CSV: %q", a)
	}
}

// TestLedgerCSVBolt: posgw ledger -csv on the bbolt ledger.
func TestLedgerCSVBolt(t *testing.T) {
	dir := t.TempDir()
	l, err := gateway.OpenLedger(filepath.Join(dir, ledgerFile), false)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l)
	l.Close()
	checkCSV(t, "-data", dir)
}

// TestLedgerPostgres: posgw migrate (fresh, then a no-op), posgw refusing an
// unmigrated database, and posgw ledger -csv and -json on PostgreSQL.
func TestLedgerPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDB()
	err := run(context.Background(), []string{"ledger", "-ledger", url}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "posgw migrate") {
		t.Fatalf("ledger on an unmigrated database: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, []string{"-ledger", url, "-broker", "tcp://127.0.0.1:1"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "posgw migrate") {
		t.Fatalf("posgw on an unmigrated database: %v", err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate", "-ledger", url}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "applied migration 1") {
		t.Fatalf("migrate: %v %s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"migrate", "-ledger", url}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "nothing to do") {
		t.Fatalf("migrate again: %v %s", err, out.String())
	}
	l, err := gateway.OpenPG(ctx, gateway.PGConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l)
	l.Close()
	checkCSV(t, "-ledger", url)
	out.Reset()
	if err := run(ctx, []string{"ledger", "-ledger", url, "-totals", "-json"}, &out, io.Discard); err != nil ||
		strings.TrimSpace(out.String()) != `{"device":"shop-1","currency":"KRW","sales_count":2,"sales_minor":15400,"refunds_count":1,"refunds_minor":2000,"net_minor":13400,"declined":0,"reversed":1}` {
		t.Fatalf("totals -json: %v %s", err, out.String())
	}
}

// syncBuf is a goroutine-safe output buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWaitsForTheDatabase: posgw started before its database waits for it (it does
// not exit), and stops cleanly meanwhile.
func TestWaitsForTheDatabase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-ledger", "postgres://posgw@127.0.0.1:1/walletless?sslmode=disable&connect_timeout=1",
			"-broker", "tcp://127.0.0.1:1"}, io.Discard, &out)
	}()
	for !strings.Contains(out.String(), "ledger database unreachable; waiting for it") {
		select {
		case err := <-done:
			t.Fatalf("posgw gave up on an unreachable database: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped while waiting: %v", err)
	}
}
