package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/broker"
	wsync "github.com/walletless/walletless/sync"
)

// TestLinkBundles: a backlog leaves in bundles of at most Config.Bundle entries, in
// outbox order, every entry once; with Bundle 1 nothing is bundled. The test plays
// the cloud with a plain MQTT client and answers each message with a ResultBatch.
func TestLinkBundles(t *testing.T) {
	for _, bundle := range []int{1, 16} {
		t.Run(fmt.Sprint("bundle=", bundle), func(t *testing.T) {
			const n = 100
			b, err := broker.Start("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			dev := "dev-b"
			var (
				mu      stdsync.Mutex
				keys    []string // in arrival order
				sizes   []int    // items per message
				bundled int      // messages on the bundle topic
			)
			cloud := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("cloud"))
			if tok := cloud.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			defer cloud.Disconnect(0)
			answer := func(_ mqtt.Client, m mqtt.Message) {
				var got []string
				if m.Topic() == wsync.BundleTopic(dev) {
					claimed, msgs, errs := wsync.DecodeBundle(m.Payload())
					if claimed != dev || len(errs) > 0 {
						t.Errorf("bundle from %q: %v", claimed, errs)
					}
					for _, u := range msgs {
						got = append(got, u.Key)
					}
				} else {
					_, key, _, err := wsync.DecodeUp(wsync.KindPayment, m.Payload())
					if err != nil {
						t.Errorf("request: %v", err)
					}
					got = append(got, key)
				}
				rs := wsync.ResultBatch{V: wsync.Version}
				for _, k := range got {
					rs.Results = append(rs.Results, wsync.PaymentResult{V: wsync.Version, Key: k, Kind: wsync.KindPayment, Status: wsync.ResultApproved, DecidedAt: time.Now().UTC()})
				}
				raw, _ := json.Marshal(rs)
				cloud.Publish(wsync.ResultTopic(dev), 1, false, raw)
				mu.Lock()
				defer mu.Unlock()
				keys = append(keys, got...)
				sizes = append(sizes, len(got))
				if m.Topic() == wsync.BundleTopic(dev) {
					bundled++
				}
			}
			for _, topic := range []string{wsync.RequestTopic(dev), wsync.BundleTopic(dev)} {
				if tok := cloud.Subscribe(topic, 1, answer); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Fatal(tok.Error())
				}
			}

			d := newDevice(t, b.URL(), dev)
			d.link, err = wsync.NewLink(wsync.Config{
				BrokerURL: b.URL(), DeviceID: dev, Outbox: storeOutbox{d.st}, ResendAfter: time.Minute, Bundle: bundle,
				OnResult: func(_ context.Context, r wsync.PaymentResult) {
					d.mu.Lock()
					defer d.mu.Unlock()
					d.st.Ack(d.seqOf[r.Key])
					d.results[r.Key] = r.Status
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range n { // the backlog is there before the link connects
				want = append(want, d.enqueue(t, dev, i, int64(1000+i)))
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); d.link.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, "every entry answered", 20*time.Second, func() bool { return d.count() == n })
			waitFor(t, "outbox drained", 10*time.Second, func() bool { depth, _, _ := d.st.OutboxStats(); return depth == 0 })

			mu.Lock()
			defer mu.Unlock()
			if strings.Join(keys, ",") != strings.Join(want, ",") {
				t.Errorf("the cloud got %d keys, not each of the %d once in outbox order", len(keys), n)
			}
			biggest := 0
			for _, s := range sizes {
				biggest = max(biggest, s)
			}
			if biggest > bundle {
				t.Errorf("a message carried %d entries; the bundle limit is %d", biggest, bundle)
			}
			st := d.link.Stats()
			if bundle == 1 && (bundled > 0 || st.Publishes != n) {
				t.Errorf("bundle 1: %d bundles, %d publishes for %d entries", bundled, st.Publishes, n)
			}
			if bundle > 1 && (bundled == 0 || st.Publishes >= st.Published) {
				t.Errorf("a backlog of %d went out in %d publishes (%d bundles)", n, st.Publishes, bundled)
			}
			t.Logf("%d entries in %d publishes, largest %d", st.Published, st.Publishes, biggest)
		})
	}
}

// TestBundleContract: encode and decode agree; bad bundles and bad items are refused
// with an error each, good items survive a bad neighbour.
func TestBundleContract(t *testing.T) {
	item := func(kind string, v any) wsync.BundleItem {
		raw, _ := json.Marshal(v)
		return wsync.BundleItem{Kind: kind, Payload: raw}
	}
	good := item(wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "k1", Device: "d1"})
	raw, err := wsync.EncodeBundle("d1", []wsync.BundleItem{good, item("bogus", map[string]int{"v": 1}), item(wsync.KindQuery, wsync.QueryRequest{V: 1, Key: "k2", Device: "d2"}), good})
	if err != nil {
		t.Fatal(err)
	}
	dev, msgs, errs := wsync.DecodeBundle(raw)
	if dev != "d1" || len(msgs) != 2 || len(errs) != 2 || msgs[0].Key != "k1" || msgs[0].Kind != wsync.KindQuery {
		t.Errorf("DecodeBundle = %q %+v %v", dev, msgs, errs)
	}
	if _, err := wsync.EncodeBundle("d1", nil); err == nil {
		t.Error("empty bundle encoded")
	}
	if _, err := wsync.EncodeBundle("d1", make([]wsync.BundleItem, wsync.MaxBundleItems+1)); err == nil {
		t.Error("oversize bundle encoded")
	}
	for _, bad := range []string{
		`garbage`,
		`{"v":1,"device":"d1","items":[]}`,
		`{"v":2,"device":"d1","items":[{"kind":"query","payload":{"v":1,"key":"k","device":"d1"}}]}`,
		`{"v":1,"device":"../x","items":[{"kind":"query","payload":{"v":1,"key":"k","device":"../x"}}]}`,
		`{"v":1,"device":"d1","items":[{"kind":"query","payload":{"v":1,"key":"k","device":"d1"}}],"more":1}`,
		`{"v":1,"device":"d1","items":[` + strings.Repeat(`{"kind":"query","payload":{"v":1,"key":"k","device":"d1"}},`, wsync.MaxBundleItems) + `{"kind":"query","payload":{"v":1,"key":"k","device":"d1"}}]}`,
	} {
		if _, msgs, errs := wsync.DecodeBundle([]byte(bad)); len(msgs) != 0 || len(errs) == 0 {
			t.Errorf("%.60s: %d messages, %v", bad, len(msgs), errs)
		}
	}
}

func FuzzDecodeBundle(f *testing.F) {
	f.Add([]byte(`{"v":1,"device":"d1","items":[{"kind":"query","payload":{"v":1,"key":"k","device":"d1"}}]}`))
	f.Add([]byte(`{"v":1,"device":"d1","items":[{"kind":"payment","payload":{"v":1}},{"kind":"x","payload":null}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dev, msgs, errs := wsync.DecodeBundle(b)
		if len(msgs) > 0 && dev == "" {
			t.Fatal("items without a device")
		}
		if len(msgs) == 0 && len(errs) == 0 {
			t.Fatal("nothing decoded and no error")
		}
		for _, m := range msgs {
			if m.Device != dev || m.Key == "" || m.Msg == nil {
				t.Fatalf("bad item %+v", m)
			}
		}
	})
}
