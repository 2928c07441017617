package printer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/creack/pty"
)

// waitFor polls cond until it holds; it fails the test after a generous limit. It is
// a liveness guard, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testReceipt(t *testing.T) []byte {
	t.Helper()
	data, err := EncodeReceipt(sampleReceipt(), DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestTCPPrintAndStatus(t *testing.T) {
	f := newFakePrinter()
	addr, _ := listenFake(t, f)
	p, err := Open("tcp:"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	data := testReceipt(t)
	if err := p.Print(ctx, "S1", data); err != nil {
		t.Fatal(err)
	}
	if got := f.printed(); len(got) != 1 || !bytes.Equal(got[0], data) {
		t.Fatalf("printer got %d jobs", len(got))
	}
	st, err := p.(StatusReader).Status(ctx)
	if err != nil || !st.Ready() {
		t.Errorf("Status = %v, %v", st, err)
	}
	f.set(func(f *fakePrinter) { f.status = Status{CoverOpen: true} })
	st, err = p.(StatusReader).Status(ctx)
	if err != nil || !st.CoverOpen || st.Ready() {
		t.Errorf("Status = %v, %v; want cover open", st, err)
	}
}

func TestTCPPaperOutBeforePrinting(t *testing.T) {
	f := newFakePrinter()
	f.status.PaperOut = true
	addr, _ := listenFake(t, f)
	p, _ := Open("tcp:"+addr, nil)
	defer p.Close()
	err := p.Print(context.Background(), "S1", testReceipt(t))
	var se *StatusError
	if !errors.As(err, &se) || !se.Status.PaperOut || se.When != "before printing" || !isNotReady(err) {
		t.Fatalf("err = %v, want paper out before printing", err)
	}
	if got := f.printed(); len(got) != 0 {
		t.Errorf("%d jobs printed on an empty printer", len(got))
	}
}

func TestTCPPaperOutMidReceipt(t *testing.T) {
	f := newFakePrinter()
	data := testReceipt(t)
	f.paperAfter = len(data) / 2
	addr, _ := listenFake(t, f)
	// The wait for GS r bounds how long a stopped printer takes to be noticed.
	p, _ := OpenWith("tcp:"+addr, Options{WriteTimeout: 200 * time.Millisecond})
	defer p.Close()
	err := p.Print(context.Background(), "S1", data)
	var se *StatusError
	if !errors.As(err, &se) || !se.Status.PaperOut || se.When != "after printing" {
		t.Fatalf("err = %v, want paper out after printing", err)
	}
	f.set(func(f *fakePrinter) { f.status.PaperOut = false }) // new roll
	if err := p.Print(context.Background(), "S1", data); err != nil {
		t.Fatal(err)
	}
	got := f.printed()
	if len(got) != 2 || len(got[0]) != len(data)/2 || !bytes.Equal(got[1], data) {
		t.Errorf("jobs: %d; want half a receipt then the whole one", len(got))
	}
}

func TestTCPPrinterGone(t *testing.T) {
	f := newFakePrinter()
	addr, stop := listenFake(t, f)
	stop()
	p, _ := Open("tcp:"+addr, nil)
	defer p.Close()
	err := p.Print(context.Background(), "S1", []byte("x"))
	if err == nil || permanent(err) {
		t.Fatalf("err = %v, want a transient connect error", err)
	}
}

func TestTCPWriteTimeout(t *testing.T) {
	f := newFakePrinter()
	f.stall = true
	addr, _ := listenFake(t, f)
	p, _ := OpenWith("tcp:"+addr+"?status=off", Options{WriteTimeout: 100 * time.Millisecond})
	defer p.Close()
	big := make([]byte, 32<<20) // more than the loopback socket buffers hold
	err := p.Print(context.Background(), "S1", big)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestTCPNoStatusAnswer(t *testing.T) {
	// A printer that takes the connection but never answers DLE EOT.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				c.Close()
				return
			}
		}
	}()
	p, _ := OpenWith("tcp:"+ln.Addr().String(), Options{StatusTimeout: 50 * time.Millisecond})
	err = p.Print(context.Background(), "S1", []byte("x"))
	if !errors.Is(err, errNoAnswer) {
		t.Fatalf("err = %v, want no answer", err)
	}
	p.Close()
	ln.Close()
	<-done
}

func TestTCPCancel(t *testing.T) {
	f := newFakePrinter()
	f.stall = true
	addr, _ := listenFake(t, f)
	p, _ := OpenWith("tcp:"+addr+"?status=off", Options{WriteTimeout: time.Hour})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Print(ctx, "S1", make([]byte, 32<<20)) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestSerialPTY drives the serial transport through a pseudo terminal.
func TestSerialPTY(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	f := newFakePrinter()
	done := make(chan struct{})
	go func() { defer close(done); f.serve(master) }()
	// The master's blocking Read ends when the last slave descriptor closes: close
	// the slave (and the port, deferred later so run earlier) before waiting.
	defer func() {
		master.Close()
		<-done
	}()
	defer slave.Close()

	p, err := Open(slave.Name()+":115200", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	data := testReceipt(t)
	if err := p.Print(ctx, "S1", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "receipt bytes on the pty", func() bool {
		got := f.printed()
		return len(got) == 1 && len(got[0]) == len(data)
	})
	if got := f.printed(); !bytes.Equal(got[0], data) {
		t.Fatal("bytes changed on the way through the pty")
	}

	f.set(func(f *fakePrinter) { f.status.PaperOut = true })
	err = p.Print(ctx, "S2", data)
	if !isNotReady(err) {
		t.Fatalf("paper out: err = %v", err)
	}
	st, err := p.(StatusReader).Status(ctx)
	if err != nil || !st.PaperOut {
		t.Fatalf("Status = %v, %v", st, err)
	}
	f.set(func(f *fakePrinter) { f.status.PaperOut = false })
	if err := p.Print(ctx, "S2", data); err != nil {
		t.Fatal(err)
	}
}

func TestSerialMissingDevice(t *testing.T) {
	p, err := Open("/dev/ttyWALLETLESS-NONE", nil)
	if err != nil {
		t.Fatal(err) // a printer unplugged at start-up is not an Open error
	}
	defer p.Close()
	if err := p.Print(context.Background(), "S1", []byte("x")); err == nil || permanent(err) {
		t.Fatalf("err = %v, want a transient open error", err)
	}
}

func TestDevicePrinter(t *testing.T) {
	// /dev/null stands in for a printer class device: a character device with no
	// LPGETSTATUS, which must be written without a status check failing.
	p, err := Open("/dev/null", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Print(context.Background(), "S1", testReceipt(t)); err != nil {
		t.Fatal(err)
	}
}

// TestSerialPTYStalled: a printer that stops taking bytes makes the job time out, and
// the port is reopened for the next one once it reads again.
func TestSerialPTYStalled(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	f := newFakePrinter()
	f.stall = true
	done := make(chan struct{})
	go func() { defer close(done); f.serve(master) }()
	// The master's blocking Read ends when the last slave descriptor closes: close
	// the slave (and the port, deferred later so run earlier) before waiting.
	defer func() {
		master.Close()
		<-done
	}()
	defer slave.Close()
	p, err := OpenWith(slave.Name()+"?status=off", Options{WriteTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Print(context.Background(), "S1", make([]byte, 256<<10))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	f.set(func(f *fakePrinter) { f.stall = false; close(f.unstall) })
	data := testReceipt(t)
	waitFor(t, "a successful print after the stall", func() bool {
		return p.Print(context.Background(), "S2", data) == nil
	})
}

// TestTCPCloneWithoutGSr: a printer that ignores GS r still prints; after the first
// job the printer is confirmed by DLE EOT alone.
func TestTCPCloneWithoutGSr(t *testing.T) {
	f := newFakePrinter()
	f.noGSr = true
	addr, _ := listenFake(t, f)
	p, _ := OpenWith("tcp:"+addr, Options{WriteTimeout: 200 * time.Millisecond})
	defer p.Close()
	data := testReceipt(t)
	for _, name := range []string{"S1", "S2"} {
		if err := p.Print(context.Background(), name, data); err != nil {
			t.Fatal(err)
		}
	}
	if p.(*tcpPrinter).gsr.Load() {
		t.Error("still waiting for GS r answers from a printer that gives none")
	}
	if got := f.printed(); len(got) != 2 {
		t.Errorf("%d jobs printed", len(got))
	}
}
