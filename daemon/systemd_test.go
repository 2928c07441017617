package daemon

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/sdnotify"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/store"
)

// notifySocket is a NOTIFY_SOCKET the test owns, as systemd would.
func notifySocket(t *testing.T) (*sdnotify.Notifier, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n, err := sdnotify.New(path)
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// TestSystemdNotify runs posd with a notify socket and a watchdog: READY=1 comes
// once the API listens (the API answers by then), then WATCHDOG=1 pings, and
// STOPPING=1 at the end.
func TestSystemdNotify(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n, c := notifySocket(t)
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "posd")
	cfg.API.Addr = "127.0.0.1:0"
	cfg.MQTT.Broker = b.URL()
	cfg.DeviceID = "shop-7"
	cfg.Printer.Target = "none"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan Info, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Version: "test", Stdin: blockingReader{ctx}, Notify: n, Watchdog: 200 * time.Millisecond,
			Ready: func(i Info) { ready <- i }})
	}()
	if got := readNotify(t, c); got != sdnotify.Ready {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	info := <-ready // Ready ran before READY=1 was sent: the API listens
	conn, err := net.Dial("tcp", info.APIURL[len("http://"):])
	if err != nil {
		t.Fatalf("READY=1 before the API listens: %v", err)
	}
	conn.Close()
	for i := 0; i < 3; i++ {
		if got := readNotify(t, c); got != sdnotify.Watchdog {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for {
		got := readNotify(t, c)
		if got == sdnotify.Stopping {
			break
		}
		if got != sdnotify.Watchdog {
			t.Fatalf("notification %q at the end, want STOPPING=1", got)
		}
	}
}

// blockingReader is a scanner source with no scans.
type blockingReader struct{ ctx context.Context }

func (r blockingReader) Read([]byte) (int, error) { <-r.ctx.Done(); return 0, r.ctx.Err() }

// TestWatchdogNeedsTheEngineLoop blocks the sale engine's goroutine (a Kick that
// never returns stands for a hung commit or handler): the probe sends no WATCHDOG=1
// while the loop is stuck, and sends it again once the loop turns.
func TestWatchdogNeedsTheEngineLoop(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "posd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var armed atomic.Bool
	release, entered := make(chan struct{}), make(chan struct{})
	engine, err := payment.New(payment.Config{
		Store:        st,
		EncodeOutbox: encodeOutbox("shop-7"),
		Kick: func() {
			if armed.Load() {
				close(entered)
				<-release
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- engine.Run(ctx) }()
	get := func(context.Context) *payment.Engine { return engine }
	n, c := notifySocket(t)
	p := &prober{n: n, engine: get}

	if err := p.probe(ctx, 5*time.Second); err != nil {
		t.Fatalf("healthy engine: %v", err)
	}
	if got := readNotify(t, c); got != sdnotify.Watchdog {
		t.Fatalf("got %q", got)
	}

	sale, err := engine.Create(ctx, 1000, "KRW")
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	cancelled := make(chan error, 1)
	go func() { _, err := engine.Cancel(ctx, sale.ID); cancelled <- err }() // runs Kick on the loop: stuck
	<-entered
	for i := 0; i < 3; i++ {
		if err := p.probe(ctx, 50*time.Millisecond); err == nil {
			t.Fatal("the watchdog pinged while the engine loop was stuck")
		}
	}
	// Nothing was sent: the next datagram is the marker, not a WATCHDOG=1.
	if err := n.Notify("STATUS=marker"); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, c); got != "STATUS=marker" {
		t.Fatalf("got %q while the engine was stuck", got)
	}
	close(release)
	if err := <-cancelled; err != nil {
		t.Fatal(err)
	}
	if err := p.probe(ctx, 5*time.Second); err != nil {
		t.Fatalf("engine turning again: %v", err)
	}
	if got := readNotify(t, c); got != sdnotify.Watchdog {
		t.Fatalf("got %q", got)
	}
	// No engine (a new configuration starting): no ping either.
	none := &prober{n: n, engine: func(context.Context) *payment.Engine { return nil }}
	if err := none.probe(ctx, time.Second); err == nil {
		t.Error("pinged without an engine")
	}
	cancel()
	<-ran
}
