package device

import (
	"errors"
	"testing"
	"time"

	"github.com/creack/pty"
)

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in      string
		want    Selector
		wantErr bool
	}{
		{"/dev/ttyACM0", Selector{Path: "/dev/ttyACM0"}, false},
		{"usb:05e0:1200", Selector{VID: "05E0", PID: "1200"}, false},
		{"USB:5e0:1200:S12:34", Selector{VID: "05E0", PID: "1200", Serial: "S12:34"}, false},
		{"usb:05e0", Selector{}, true},
		{"usb:zz:1200", Selector{}, true},
		{"usb:12345:1200", Selector{}, true},
		{"", Selector{}, true},
	}
	for _, tt := range tests {
		got, err := ParseSelector(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSelector(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadSelector) {
				t.Errorf("ParseSelector(%q) error %v does not wrap ErrBadSelector", tt.in, err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSelector(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if back, _ := ParseSelector(got.String()); back != got {
			t.Errorf("round trip of %q: %+v", got.String(), back)
		}
	}
}

func TestResolve(t *testing.T) {
	ports := []PortInfo{
		{Name: "/dev/ttyS0"},
		{Name: "/dev/ttyACM3", IsUSB: true, VID: "05E0", PID: "1200", Serial: "B"},
		{Name: "/dev/ttyACM1", IsUSB: true, VID: "05E0", PID: "1200", Serial: "A"},
		{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001"},
	}
	tests := []struct {
		sel  string
		want string
	}{
		{"usb:05e0:1200", "/dev/ttyACM1"},
		{"usb:05e0:1200:B", "/dev/ttyACM3"},
		{"usb:403:6001", "/dev/ttyUSB0"},
		{"usb:1234:5678", ""},
		{"usb:05e0:1200:C", ""},
	}
	for _, tt := range tests {
		sel, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Resolve(sel, ports)
		if tt.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Resolve(%s) = %q, %v; want ErrNotFound", tt.sel, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", tt.sel, got, err, tt.want)
		}
	}
	if sel, ok := Identify("/dev/ttyACM3", ports); !ok || sel.String() != "usb:05E0:1200:B" {
		t.Errorf("Identify = %v, %v", sel, ok)
	}
	if _, ok := Identify("/dev/ttyS0", ports); ok {
		t.Error("Identify found a USB identity for a non-USB port")
	}
	if _, err := Resolve(Selector{Path: "/nonexistent/tty"}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve of a missing path: %v", err)
	}
}

// TestOpenSerialPTY opens a real pseudo terminal through go.bug.st/serial: the read
// timeout gives (0, nil), data arrives, closing the master end looks like an unplug,
// and Close from another goroutine ends a blocked Read.
func TestOpenSerialPTY(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo terminals here: %v", err)
	}
	name := tty.Name()
	defer tty.Close()
	p, err := OpenSerial(name, SerialConfig{Baud: 115200, ReadTimeout: 20 * time.Millisecond})
	if err != nil {
		master.Close()
		t.Fatalf("OpenSerial(%s): %v", name, err)
	}
	defer p.Close()
	buf := make([]byte, 64)
	if n, err := p.Read(buf); n != 0 || err != nil {
		t.Fatalf("idle Read = %d, %v; want 0, nil (timeout)", n, err)
	}
	if _, err := master.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := 0; i < 500 && len(got) < 6; i++ {
		n, err := p.Read(buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "hello\r" {
		t.Fatalf("read %q, want %q", got, "hello\r")
	}
	master.Close() // unplug
	var rerr error
	for i := 0; i < 500 && rerr == nil; i++ {
		_, rerr = p.Read(buf)
	}
	if rerr == nil {
		t.Fatal("Read after the peer closed never failed")
	}

	// A blocked Read ends when another goroutine closes the port.
	master2, tty2, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master2.Close()
	defer tty2.Close()
	p2, err := OpenSerial(tty2.Name(), SerialConfig{ReadTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p2.Read(buf)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := p2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	p2.Close() // idempotent
}
