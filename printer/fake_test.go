package printer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// fakePrinter is an ESC/POS printer on the other end of a stream: it answers DLE EOT
// (at once) and GS r (in order, only while printing) with its status and keeps
// everything else as printed bytes. Tests flip its state.
type fakePrinter struct {
	mu         sync.Mutex
	status     Status          // guarded by mu
	paperAfter int             // guarded by mu; > 0: run out of paper after this many more bytes
	stall      bool            // guarded by mu; stop reading (a jammed or slow printer)
	noGSr      bool            // guarded by mu; a clone that ignores GS r
	jobs       []*bytes.Buffer // guarded by mu; one per connection
	unstall    chan struct{}
	changed    chan struct{} // receives after each chunk is processed
}

func newFakePrinter() *fakePrinter {
	return &fakePrinter{unstall: make(chan struct{}), changed: make(chan struct{}, 1)}
}

func (f *fakePrinter) set(fn func(f *fakePrinter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// printed returns the bytes printed per connection (the one stream for a pty),
// leaving out connections that printed nothing (status queries, refused jobs).
func (f *fakePrinter) printed() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, j := range f.jobs {
		if j.Len() > 0 {
			out = append(out, append([]byte(nil), j.Bytes()...))
		}
	}
	return out
}

// serve handles one connection until it ends.
func (f *fakePrinter) serve(rw io.ReadWriter) {
	job := new(bytes.Buffer)
	f.mu.Lock()
	f.jobs = append(f.jobs, job)
	f.mu.Unlock()
	buf := make([]byte, 4096)
	var pend []byte
	for {
		f.mu.Lock()
		stall := f.stall
		f.mu.Unlock()
		if stall {
			<-f.unstall
		}
		n, err := rw.Read(buf)
		if n > 0 {
			pend = append(pend, buf[:n]...)
			pend = f.process(rw, job, pend)
			select {
			case f.changed <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// process consumes data, answering DLE EOT n; it returns an incomplete tail.
func (f *fakePrinter) process(w io.Writer, job *bytes.Buffer, p []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(p) > 0 {
		if p[0] == 0x10 {
			if len(p) < 3 {
				return p
			}
			if p[1] == 0x04 {
				b1, b2, b4 := EncodeStatus(f.status)
				ans := map[byte]byte{1: b1, 2: b2, 3: 0x12, 4: b4}[p[2]]
				w.Write([]byte{ans})
				p = p[3:]
				continue
			}
		}
		if p[0] == 0x1d && len(p) >= 2 && p[1] == 'r' {
			if len(p) < 3 {
				return p
			}
			// GS r: answered in order, only by a printer that is printing.
			if !f.status.PaperOut && !f.status.CoverOpen && !f.noGSr {
				var ans byte
				if f.status.PaperNearEnd {
					ans |= 0x03
				}
				w.Write([]byte{ans})
			}
			p = p[3:]
			continue
		}
		if p[0] == 0x1d && len(p) < 2 {
			return p
		}
		if f.status.PaperOut || f.status.CoverOpen {
			p = p[1:] // not printing: the byte is lost
			continue
		}
		job.WriteByte(p[0])
		p = p[1:]
		if f.paperAfter > 0 {
			f.paperAfter--
			if f.paperAfter == 0 {
				f.status.PaperOut = true
			}
		}
	}
	return nil
}

// listenFake starts a fake network printer on 127.0.0.1 and returns its address.
func listenFake(t *testing.T, f *fakePrinter) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFake(t, ln, f)
}

func serveFake(t *testing.T, ln net.Listener, f *fakePrinter) (string, func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.serve(c)
				c.Close()
			}()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ln.Close()
			f.set(func(f *fakePrinter) {
				if f.stall {
					f.stall = false
					close(f.unstall)
				}
			})
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func isNotReady(err error) bool { return errors.Is(err, ErrNotReady) }
