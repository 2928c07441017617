package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	wsync "github.com/walletless/walletless/sync"
)

// TestGatewayReconnectsAfterBrokerRestart: a broker without persistence forgets the
// gateway's session when it restarts; the gateway reconnects with backoff, subscribes
// again and answers the next sale. A short outage costs one log line, not one per
// attempt.
func TestGatewayReconnectsAfterBrokerRestart(t *testing.T) {
	m := newMosquitto(t, mosqOpts{persistence: false, users: []string{"dev-rc"}})
	gw := startGateways(t, m.URL(), 1)
	g := gw.gws[0]
	saleOnce := func(key string) {
		t.Helper()
		dev := mustConnect(t, m.URL(), "dev-rc", "posd-dev-rc-"+key)
		dev.sub(t, wsync.ResultTopic("dev-rc"))
		raw, _ := json.Marshal(wsync.PaymentRequest{V: 1, Key: key, Device: "dev-rc", AmountMinor: 500, Currency: "KRW",
			Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456", CreatedAt: time.Now().UTC()})
		dev.pub(t, wsync.RequestTopic("dev-rc"), false, string(raw))
		waitFor(t, "result for "+key, 30*time.Second, func() bool {
			dev.mu.Lock()
			defer dev.mu.Unlock()
			for _, in := range dev.in {
				if strings.Contains(string(in.Payload()), key) {
					return true
				}
			}
			return false
		})
		dev.c.Disconnect(0)
	}
	saleOnce("before-restart")
	m.stop()
	waitFor(t, "gateway notices the broker is gone", 30*time.Second, func() bool { return !g.Ready() })
	time.Sleep(1500 * time.Millisecond) // long enough for several failed attempts
	m.start()
	waitFor(t, "gateway subscribed again", 60*time.Second, g.Ready)
	saleOnce("after-restart")
	if s := g.Stats(); s.Connects != 2 || s.Decided != 2 {
		t.Errorf("stats %+v: want 2 connects and 2 decisions", s)
	}
	if got := gw.logs.count("broker unreachable"); got != 1 {
		t.Errorf("%d 'broker unreachable' lines for one short outage, want 1:\n%s", got, gw.logs)
	}
	entries := gw.entries(t)
	if len(entries) != 2 {
		t.Errorf("ledger %+v", entries)
	}
}
