package gateway

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/internal/wirecheck"
	wsync "github.com/walletless/walletless/sync"
)

// TestCloudSessionIsClean: posgw's MQTT session is clean (docs/protocol.md, "The
// cloud's session"), so a request published while no gateway runs is not queued for
// it and not delivered when a gateway with the same client id comes back: the device
// resends what is still unanswered, fresh. With a persistent session the broker kept
// such requests and redelivered ones answered long ago (issue 15 #6).
func TestCloudSessionIsClean(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	run := func() (stop func()) {
		g, err := New(Config{BrokerURL: b.URL(), ClientID: "posgw-fixed", Ledger: l})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { g.Run(ctx); close(done) }()
		waitFor(t, g.Ready)
		return func() { cancel(); <-done }
	}
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("dev-s"))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dev.Disconnect(50)
	publish := func(key string) {
		raw, _ := json.Marshal(wsync.PaymentRequest{V: 1, Key: key, Device: "dev-s", AmountMinor: 100, Currency: "KRW",
			Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
		if tok := dev.Publish(wsync.RequestTopic("dev-s"), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	stored := func(key string) bool {
		found := false
		l.ForEach(func(e Entry) error {
			found = found || e.Key == key
			return nil
		})
		return found
	}
	stop := run()
	publish("first")
	waitFor(t, func() bool { return stored("first") })
	stop()
	publish("while-away") // nobody subscribed: a clean session queues nothing
	stop = run()
	defer stop()
	publish("marker")
	waitFor(t, func() bool { return stored("marker") })
	if stored("while-away") {
		t.Fatal("a request published while the cloud was away was delivered to its next session: the session is not clean")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
