package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a NOTIFY_SOCKET the test owns, as systemd would.
func listen(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifySendsDatagrams(t *testing.T) {
	path, c := listen(t)
	n, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{Ready, Watchdog, "STATUS=selling\nWATCHDOG=1", Stopping} {
		if err := n.Notify(msg); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); got != msg {
			t.Errorf("got %q, want %q", got, msg)
		}
	}
}

func TestFromEnv(t *testing.T) {
	path, c := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	n, err := FromEnv()
	if err != nil || n == nil {
		t.Fatalf("FromEnv: %v, %v", n, err)
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != Ready {
		t.Errorf("got %q", got)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	n, err = FromEnv()
	if err != nil || n != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v", n, err)
	}
	if err := n.Notify(Ready); err != nil { // nil sends nothing
		t.Fatal(err)
	}
	if _, err := New("relative.sock"); err == nil {
		t.Error("a relative socket path was accepted")
	}
}

func TestNotifyToMissingSocketFails(t *testing.T) {
	n, _ := New(filepath.Join(t.TempDir(), "gone.sock"))
	if err := n.Notify(Ready); err == nil {
		t.Error("no error for a missing socket")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
		none      bool
	}{
		{usec: "", none: true},
		{usec: "30000000", want: 30 * time.Second},
		{usec: "30000000", pid: "42", want: 30 * time.Second},
		{usec: "30000000", pid: "43", none: true},
		{usec: "0", err: true},
		{usec: "x", err: true},
		{usec: "1000", pid: "x", err: true},
	} {
		got, err := watchdogInterval(tc.usec, tc.pid, 42)
		switch {
		case tc.none:
			if !errors.Is(err, ErrNoWatchdog) {
				t.Errorf("%q/%q: err %v, want ErrNoWatchdog", tc.usec, tc.pid, err)
			}
		case tc.err:
			if err == nil || errors.Is(err, ErrNoWatchdog) {
				t.Errorf("%q/%q: err %v, want a parse error", tc.usec, tc.pid, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%q/%q: %v, %v; want %v", tc.usec, tc.pid, got, err, tc.want)
		}
	}
}
