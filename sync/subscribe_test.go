package sync_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	stdsync "sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// TestSubscriptionsAtEveryConnect: the link carries extra subscriptions on its own
// connection, subscribes again at every connect (so a retained message arrives again
// after the broker comes back) and names its groups in the birth message.
func TestSubscriptionsAtEveryConnect(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	var mu stdsync.Mutex
	var got []string // guarded by mu
	connects := make(chan struct{}, 8)
	st, err := store.Open(filepath.Join(t.TempDir(), "posd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := wsync.Config{BrokerURL: b.URL(), DeviceID: "dev-s", Outbox: storeOutbox{st}, BackoffMax: time.Second,
		OnResult: func(context.Context, wsync.PaymentResult) {}}
	cfg.Groups = []string{"korea"}
	cfg.Subscriptions = []wsync.Subscription{{Filter: "walletless/v1/fleet/config/#", Handle: func(topic string, p []byte) {
		mu.Lock()
		got = append(got, topic+"="+string(p))
		mu.Unlock()
	}}}
	cfg.OnConnect = func() { connects <- struct{}{} }
	link, err := wsync.NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); link.Run(ctx) }()
	defer func() { cancel(); <-done; b.Close() }()

	publish := func(topic, payload string) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("pub"))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		c.Disconnect(100)
	}
	<-connects
	publish("walletless/v1/fleet/config/all", "one")
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	waitFor(t, "the retained message", 10*time.Second, func() bool { return count() >= 1 })
	if err := link.Publish("walletless/v1/devices/dev-s/config/reported", true, []byte("r")); err != nil {
		t.Fatalf("Publish while online: %v", err)
	}

	// The birth message carries the groups.
	births := make(chan []byte, 1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("watch"))
	if tok := c.Connect(); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect")
	}
	c.Subscribe(wsync.StatusTopic("dev-s"), 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case births <- m.Payload():
		default:
		}
	}).WaitTimeout(10 * time.Second)
	var birth wsync.Status
	if err := json.Unmarshal(<-births, &birth); err != nil || birth.State != "online" || len(birth.Groups) != 1 || birth.Groups[0] != "korea" {
		t.Fatalf("birth %+v %v", birth, err)
	}
	c.Disconnect(100)

	// The broker restarts (retained messages are lost with it): the link subscribes
	// again on the new connection and gets what is retained there.
	b.Close()
	waitFor(t, "offline", 10*time.Second, func() bool { return !link.Online() })
	if err := link.Publish("x", false, nil); err == nil {
		t.Fatal("Publish while offline succeeded")
	}
	if b, err = broker.Start(addr, nil); err != nil {
		t.Fatal(err)
	}
	<-connects
	publish("walletless/v1/fleet/config/groups/korea", "two")
	waitFor(t, "the message after the reconnect", 10*time.Second, func() bool { return count() >= 2 })
	mu.Lock()
	defer mu.Unlock()
	if got[len(got)-1] != "walletless/v1/fleet/config/groups/korea=two" {
		t.Fatalf("got %q", got)
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		f, t string
		ok   bool
	}{
		{"a/#", "a/b/c", true}, {"a/+/c", "a/b/c", true}, {"a/+", "a/b/c", false}, {"a/b", "a/b", true}, {"a/b", "a/c", false}, {"a/b/c", "a/b", false},
	} {
		if wsync.Matches(c.f, c.t) != c.ok {
			t.Errorf("Matches(%q, %q) != %v", c.f, c.t, c.ok)
		}
	}
}
