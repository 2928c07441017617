package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "posd.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func doc(s string) func(uint64) ([]byte, error) {
	return func(seq uint64) ([]byte, error) { return []byte(fmt.Sprintf(`{"s":%q,"seq":%d}`, s, seq)), nil }
}

func TestSaleAndOutboxCommitTogether(t *testing.T) {
	s, path := open(t)
	seq, err := s.PutSale("a", []byte("req-a"), doc("a"))
	if err != nil || seq != 1 {
		t.Fatalf("PutSale = %d, %v", seq, err)
	}
	if _, err := s.PutSale("b", nil, doc("b")); err != nil {
		t.Fatal(err)
	}
	seq, _ = s.PutSale("c", []byte("req-c"), doc("c"))
	if seq != 2 {
		t.Fatalf("second outbox seq = %d, want 2", seq)
	}
	got, _ := s.GetSale("a")
	if string(got) != `{"s":"a","seq":1}` {
		t.Fatalf("sale a = %s", got)
	}
	// A failing document builder must leave neither the sale nor its outbox entry.
	if _, err := s.PutSale("d", []byte("req-d"), func(uint64) ([]byte, error) { return nil, errors.New("boom") }); err == nil {
		t.Fatal("PutSale with failing builder succeeded")
	}
	if _, err := s.GetSale("d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half-written sale visible: %v", err)
	}
	es, err := s.Peek(10, nil)
	if err != nil || len(es) != 2 || string(es[0].Data) != "req-a" || string(es[1].Data) != "req-c" {
		t.Fatalf("Peek = %+v, %v", es, err)
	}
	// Survives close and reopen.
	s.Close()
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	es, _ = s2.Peek(10, func(seq uint64) bool { return seq == 1 })
	if len(es) != 1 || es[0].Seq != 2 {
		t.Fatalf("Peek with skip = %+v", es)
	}
	if err := s2.ResolveSale("a", []byte(`{"done":true}`), 1); err != nil {
		t.Fatal(err)
	}
	depth, oldest, _ := s2.OutboxStats()
	if depth != 1 || oldest != 2 {
		t.Fatalf("OutboxStats = %d, %d", depth, oldest)
	}
	if err := s2.Ack(2, 99); err != nil {
		t.Fatal(err)
	}
	if depth, _, _ := s2.OutboxStats(); depth != 0 {
		t.Fatalf("depth after ack = %d", depth)
	}
	var n int
	s2.ForEachSale(func(string, []byte) error { n++; return nil })
	if n != 3 {
		t.Fatalf("ForEachSale saw %d sales, want 3", n)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := open(t)
	start := time.Now()
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("second Open hung")
	}
}

func TestSessionCounterPersists(t *testing.T) {
	s, path := open(t)
	a, _ := s.NextSession()
	b, _ := s.NextSession()
	s.Close()
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	c, _ := s2.NextSession()
	if a != 1 || b != 2 || c != 3 {
		t.Fatalf("sessions %d %d %d", a, b, c)
	}
}

func BenchmarkPutSaleWithOutbox(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "posd.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 400)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.PutSale(fmt.Sprint(i), payload, doc("x")); err != nil {
			b.Fatal(err)
		}
	}
}
