package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// ackOutbox reports each durable ack (one bbolt transaction for many entries).
type ackOutbox struct {
	storeOutbox
	acked chan int
}

func (o ackOutbox) Ack(seqs ...uint64) error {
	err := o.storeOutbox.Ack(seqs...)
	if err == nil {
		o.acked <- len(seqs)
	}
	return err
}

func salePayload(dev string, i int) []byte {
	key := saleKey(dev, i)
	p, _ := json.Marshal(wsync.PaymentRequest{V: wsync.Version, Key: key, Device: dev, AmountMinor: amountOf(i), Currency: "KRW",
		Kind: "wallet", Scheme: "alipay", Operator: "Alipay (Ant Group)", Code: "281234567890123456", MaskedCode: "…3456#1a2b3c4d",
		CreatedAt: time.Now().UTC()})
	msg, _ := json.Marshal(wsync.OutboxMessage{Kind: wsync.KindPayment, Key: key, Payload: p})
	return msg
}

// BenchmarkSaleRoundTrip measures one sale at a time from its commit to bbolt until
// its result is applied and the outbox entry durably marked synced, through posgw and
// mosquitto (deploy/mosquitto.conf) on loopback. "nagle" is the same with mosquitto's
// default set_tcp_nodelay false.
func BenchmarkSaleRoundTrip(b *testing.B) {
	for _, nagle := range []bool{false, true} {
		name := "nodelay"
		if nagle {
			name = "nagle"
		}
		b.Run(name, func(b *testing.B) {
			m := newMosquitto(b, mosqOpts{persistence: true, nagle: nagle, users: []string{"dev-rt"}})
			startGateways(b, m.URL(), 1)
			st, err := store.Open(filepath.Join(b.TempDir(), "posd.db"), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ob := ackOutbox{storeOutbox{st}, make(chan int, 1024)}
			d := newTestDevice(b, filepath.Join(b.TempDir(), "unused.db"), wsync.Config{
				BrokerURL: m.URL(), DeviceID: "dev-rt", Username: "dev-rt", Password: password, Outbox: ob,
			})
			_ = d
			link, err := wsync.NewLink(wsync.Config{BrokerURL: m.URL(), DeviceID: "dev-rt", Username: "dev-rt", Password: password,
				Outbox: ob, OnResults: d.linkOnResults(), Heartbeat: -1})
			if err != nil {
				b.Fatal(err)
			}
			d.link = link
			stop := d.run()
			defer stop()
			waitFor(b, "online", 20*time.Second, link.Online)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				msg := salePayload("dev-rt", i)
				if _, err := st.PutSale(saleKey("dev-rt", i), msg, func(uint64) ([]byte, error) { return []byte("{}"), nil }); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now() // committed
				link.Kick()
				select {
				case <-ob.acked:
				case <-time.After(30 * time.Second):
					b.Fatal("no result within 30s")
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.50), "p50_ms")
			b.ReportMetric(q(0.99), "p99_ms")
		})
	}
}

// BenchmarkDrain10k stores 10,000 sales while the device is offline, then connects
// and measures until every one is answered by posgw and durably marked synced. The
// same run measures mosquitto_pub sending 10,000 QoS 1 messages of the same size to
// the same broker. Bundles are on (the default, 32 sales per publish) except in the
// bundle=1 case.
func BenchmarkDrain10k(b *testing.B) {
	const n = 10_000
	pub := need(b, "mosquitto_pub", "mosquitto-clients")
	for _, c := range []struct{ window, bundle int }{{32, 32}, {256, 1}, {256, 32}, {1024, 32}} {
		window := c.window
		b.Run(fmt.Sprintf("window=%d/bundle=%d", window, c.bundle), func(b *testing.B) {
			m := newMosquitto(b, mosqOpts{persistence: true, users: []string{"dev-dr"}})
			startGateways(b, m.URL(), 1)

			// mosquitto_pub's own QoS 1 rate on this broker, same payload size.
			lines := strings.Repeat(string(salePayload("dev-dr", 0))+"\n", n)
			var pubRate float64
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(pub, "-h", "127.0.0.1", "-p", fmt.Sprint(m.port), "-u", "dev-dr", "-P", password,
					"-i", "bench-pub", "-q", "1", "-t", wsync.HeartbeatTopic("dev-dr"), "-l")
				cmd.Stdin = strings.NewReader(lines)
				t0 := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("mosquitto_pub: %v\n%s", err, out)
				}
				pubRate += n / time.Since(t0).Seconds()
			}
			pubRate /= float64(b.N)

			var total time.Duration
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				st, err := store.Open(filepath.Join(b.TempDir(), "posd.db"), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				err = st.Update(func(tx *store.Tx) error {
					for i := 0; i < n; i++ {
						if _, err := tx.Enqueue(salePayload("dev-dr", it*n+i)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				ob := ackOutbox{storeOutbox{st}, make(chan int, n)}
				d := &testDevice{id: "dev-dr", st: st, results: map[string]wsync.PaymentResult{}, seen: map[string]int{}}
				link, err := wsync.NewLink(wsync.Config{BrokerURL: m.URL(), DeviceID: "dev-dr", Username: "dev-dr", Password: password,
					Outbox: ob, OnResults: d.linkOnResults(), Window: window, Bundle: c.bundle, Heartbeat: -1, ClientID: fmt.Sprintf("posd-dev-dr-%d-%d", window, it)})
				if err != nil {
					b.Fatal(err)
				}
				d.link = link
				b.StartTimer()
				t0 := time.Now()
				stop := d.run()
				for done := 0; done < n; {
					select {
					case k := <-ob.acked:
						done += k
					case <-time.After(60 * time.Second):
						b.Fatalf("drain stuck at %d of %d", done, n)
					}
				}
				total += time.Since(t0)
				b.StopTimer()
				stop()
				if depth, _, _ := st.OutboxStats(); depth != 0 {
					b.Fatalf("outbox depth %d after the drain", depth)
				}
				st.Close()
			}
			rate := float64(b.N*n) / total.Seconds()
			b.ReportMetric(rate, "sales/s")
			b.ReportMetric(pubRate, "mosquitto_pub_msgs/s")
			b.ReportMetric(rate/pubRate, "ratio")
		})
	}
}
