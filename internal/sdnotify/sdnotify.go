// Package sdnotify speaks systemd's service notification protocol (sd_notify(3)):
// one datagram per message, "KEY=VALUE" lines, to the unix socket named in
// NOTIFY_SOCKET. posd tells systemd READY=1 once its API listens and WATCHDOG=1 only
// after the sale engine has answered through its own loop.
//
// It is a few dozen lines over net.DialUnix, so posd does not need
// github.com/coreos/go-systemd for it.
//
// # Caveats
//
// Abstract sockets ("@name") are supported; the protocol is fire and forget, so a
// message that systemd dropped is not noticed here.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Standard messages.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends messages to the service manager. The zero value (and nil) sends
// nothing: posd started outside systemd.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for the socket named in NOTIFY_SOCKET, or nil when the
// variable is empty (not started by systemd with Type=notify).
func FromEnv() (*Notifier, error) {
	return New(os.Getenv("NOTIFY_SOCKET"))
}

// New returns a Notifier for socket path (a leading "@" names an abstract socket); an
// empty path gives nil.
func New(path string) (*Notifier, error) {
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q is neither a path nor an abstract socket", path)
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// Notify sends one message (lines "KEY=VALUE" joined by newlines). A nil Notifier
// sends nothing and returns nil.
func (n *Notifier) Notify(msg string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// ErrNoWatchdog says the service manager asked for no watchdog pings.
var ErrNoWatchdog = errors.New("sdnotify: no watchdog requested")

// WatchdogInterval returns the watchdog timeout systemd asked for (WATCHDOG_USEC,
// checked against WATCHDOG_PID when set), or ErrNoWatchdog.
func WatchdogInterval() (time.Duration, error) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, me int) (time.Duration, error) {
	if usec == "" {
		return 0, ErrNoWatchdog
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("sdnotify: WATCHDOG_PID %q: %w", pid, err)
		}
		if p != me {
			return 0, ErrNoWatchdog // meant for another process
		}
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC %q is not a positive number", usec)
	}
	return time.Duration(u) * time.Microsecond, nil
}
