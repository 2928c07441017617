package printer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// runQueue starts q and stops it at the end of the test, checking Run returns.
func runQueue(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

type doneLog struct {
	mu    sync.Mutex
	names []string
	errs  []error
}

func (d *doneLog) add(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names = append(d.names, name)
	d.errs = append(d.errs, err)
}

func (d *doneLog) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.names)
}

func fastQueue(p Printer, d *doneLog) *Queue {
	return NewQueue(p, QueueOptions{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Done: d.add, MaxJobs: 10})
}

func TestQueueKeepsJobsUntilPaperIsBack(t *testing.T) {
	f := newFakePrinter()
	f.status.PaperOut = true
	addr, _ := listenFake(t, f)
	p, _ := Open("tcp:"+addr, nil)
	defer p.Close()
	var d doneLog
	q := fastQueue(p, &d)
	runQueue(t, q)
	var jobs [][]byte
	for i := range 3 {
		r := sampleReceipt()
		r.SaleID = fmt.Sprintf("S%d", i)
		data, err := EncodeReceipt(r, DefaultProfile())
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, data)
		if err := q.Submit(r.SaleID, data); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failed attempt", func() bool {
		p := q.Pending()
		return len(p) == 3 && p[0].Attempts >= 2 && p[0].LastError != ""
	})
	if d.count() != 0 || len(f.printed()) != 0 {
		t.Fatal("printed with paper out")
	}
	f.set(func(f *fakePrinter) { f.status.PaperOut = false })
	q.Retry()
	waitFor(t, "all three printed", func() bool { return d.count() == 3 })
	got := f.printed()
	if len(got) != 3 {
		t.Fatalf("%d jobs printed, want 3", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], jobs[i]) || d.names[i] != fmt.Sprintf("S%d", i) || d.errs[i] != nil {
			t.Errorf("job %d printed out of order or wrong", i)
		}
	}
	if q.Len() != 0 {
		t.Errorf("queue still holds %d", q.Len())
	}
}

func TestQueuePaperOutMidReceiptReprintsWhole(t *testing.T) {
	f := newFakePrinter()
	data := testReceipt(t)
	f.paperAfter = 100
	addr, _ := listenFake(t, f)
	p, _ := OpenWith("tcp:"+addr, Options{WriteTimeout: 200 * time.Millisecond})
	defer p.Close()
	var d doneLog
	q := fastQueue(p, &d)
	runQueue(t, q)
	if err := q.Submit("S1", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the paper to run out", func() bool {
		p := q.Pending()
		return len(p) == 1 && p[0].Attempts >= 1
	})
	f.set(func(f *fakePrinter) { f.status.PaperOut = false })
	waitFor(t, "the reprint", func() bool { return d.count() == 1 })
	got := f.printed()
	if len(got) != 2 || len(got[0]) != 100 || !bytes.Equal(got[1], data) {
		t.Errorf("got %d jobs; want a torn receipt then the whole one", len(got))
	}
}

func TestQueuePrinterDisappearsAndComesBack(t *testing.T) {
	f := newFakePrinter()
	addr, stop := listenFake(t, f)
	stop() // printer switched off
	p, _ := Open("tcp:"+addr, nil)
	defer p.Close()
	var d doneLog
	q := fastQueue(p, &d)
	runQueue(t, q)
	data := testReceipt(t)
	if err := q.Submit("S1", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed attempt", func() bool {
		p := q.Pending()
		return len(p) == 1 && p[0].Attempts >= 1
	})
	ln, err := net.Listen("tcp", addr) // switched back on, same address
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	serveFake(t, ln, f)
	waitFor(t, "the receipt", func() bool { return d.count() == 1 })
	if got := f.printed(); len(got) != 1 || !bytes.Equal(got[0], data) {
		t.Errorf("printed %d jobs", len(got))
	}
}

func TestQueueSubmitNeverBlocks(t *testing.T) {
	f := newFakePrinter()
	f.stall = true // a jammed printer that takes no bytes
	addr, _ := listenFake(t, f)
	p, _ := OpenWith("tcp:"+addr, Options{StatusTimeout: time.Hour, WriteTimeout: time.Hour})
	var d doneLog
	q := NewQueue(p, QueueOptions{MaxJobs: 3, Done: d.add})
	runQueue(t, q)
	t.Cleanup(func() { p.Close() }) // runs before the queue stops: unblocks the attempt
	for i := range 3 {
		if err := q.Submit(fmt.Sprintf("S%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Submit("S3", []byte("x")); !errors.Is(err, ErrQueueFull) {
		t.Errorf("4th Submit = %v, want ErrQueueFull", err)
	}
	if err := q.Submit("S1", []byte("reprint")); err != nil {
		t.Errorf("resubmitting a waiting job: %v", err)
	}
	if err := q.Submit("bad/name", nil); !errors.Is(err, ErrName) {
		t.Errorf("bad name: %v", err)
	}
	if n := q.Len(); n != 3 {
		t.Errorf("Len = %d", n)
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := backoff(10*time.Millisecond, time.Second, n)
		if d <= 0 || d > 1250*time.Millisecond {
			t.Errorf("backoff(%d) = %v", n, d)
		}
	}
}

func TestQueueClosedAfterRun(t *testing.T) {
	q := NewQueue(discard{}, QueueOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.Run(ctx)
	if err := q.Submit("S1", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Run = %v", err)
	}
}

// blockingPrinter holds each Print until released.
type blockingPrinter struct {
	started chan string
	release chan struct{}
}

func (b *blockingPrinter) Print(ctx context.Context, name string, data []byte) error {
	b.started <- name
	<-b.release
	return nil
}
func (b *blockingPrinter) Close() error { return nil }

// TestQueueResubmitWhilePrinting: a reprint requested while the same receipt is being
// printed is printed again, not dropped with the finished job.
func TestQueueResubmitWhilePrinting(t *testing.T) {
	bp := &blockingPrinter{started: make(chan string), release: make(chan struct{})}
	var d doneLog
	q := NewQueue(bp, QueueOptions{Done: d.add})
	runQueue(t, q)
	if err := q.Submit("S1", []byte("a")); err != nil {
		t.Fatal(err)
	}
	<-bp.started // S1 is printing
	if err := q.Submit("S1", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if n := q.Len(); n != 2 {
		t.Errorf("Len = %d, want 2 (printing + reprint)", n)
	}
	bp.release <- struct{}{}
	<-bp.started // the reprint
	bp.release <- struct{}{}
	waitFor(t, "both prints", func() bool { return d.count() == 2 })
}
