package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/internal/wirecheck"
	wsync "github.com/walletless/walletless/sync"
)

// transcript records one device's exchange with a running posgw.
type transcript struct {
	t       *testing.T
	c       mqtt.Client
	mu      stdsync.Mutex
	got     [][]byte
	lines   []string
	changed chan struct{}
}

const trDevice = "shop-7"

func (tr *transcript) publish(topic string, msg any, note string) {
	tr.t.Helper()
	raw, ok := msg.([]byte)
	if !ok {
		raw, _ = json.Marshal(msg)
	}
	tr.add("→", topic, raw, note)
	if tok := tr.c.Publish(topic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tr.t.Fatal(tok.Error())
	}
}

// answer waits for the next message on the result topic and records it.
func (tr *transcript) answer(note string) {
	tr.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		tr.mu.Lock()
		if len(tr.got) > 0 {
			raw := tr.got[0]
			tr.got = tr.got[1:]
			tr.mu.Unlock()
			tr.add("←", wsync.ResultTopic(trDevice), raw, note)
			return
		}
		tr.mu.Unlock()
		select {
		case <-tr.changed:
		case <-deadline:
			tr.t.Fatal("no answer within 10s")
		}
	}
}

func (tr *transcript) add(dir, topic string, raw []byte, note string) {
	var pretty bytes.Buffer
	json.Indent(&pretty, raw, "", "  ")
	step := fmt.Sprintf("%d. %s `%s`", len(tr.lines)+1, dir, topic)
	if note != "" {
		step += " — " + note
	}
	tr.lines = append(tr.lines, step+"\n\n   ```json\n   "+strings.ReplaceAll(pretty.String(), "\n", "\n   ")+"\n   ```\n")
}

// timeRE matches the RFC 3339 UTC times on the wire.
var timeRE = regexp.MustCompile(`"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z"`)

// normalise maps each distinct time, in order of first appearance, to
// 2026-11-22T16:40:00Z plus that many seconds, so the transcript is stable while
// equal times stay equal (a replay's decided_at is the first decision's).
func normalise(s string) string {
	seen := map[string]string{}
	base := time.Date(2026, 11, 22, 16, 40, 0, 0, time.UTC)
	return timeRE.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := seen[m]; ok {
			return v
		}
		v := `"` + base.Add(time.Duration(len(seen))*time.Second).Format(time.RFC3339) + `"`
		seen[m] = v
		return v
	})
}

func trKey(n int) string { return fmt.Sprintf("019a8f3c-5b2e-7c41-9d1e-%012d", n) }

func trPay(key string, amount int64, batch string) wsync.PaymentRequest {
	return wsync.PaymentRequest{V: 1, Key: key, Device: trDevice, AmountMinor: amount, Currency: "KRW", Kind: "wallet",
		Scheme: "alipay", Operator: "Alipay (Ant Group)", Code: "281234567890123456", MaskedCode: "…3456#1a2b3c4d",
		CreatedAt: time.Now().UTC(), Batch: batch}
}

func trBundle(items ...any) []byte {
	var its []wsync.BundleItem
	for _, it := range items {
		kind := map[string]string{"PaymentRequest": wsync.KindPayment, "QueryRequest": wsync.KindQuery, "AttemptRecord": wsync.KindAttempt}[strings.TrimPrefix(fmt.Sprintf("%T", it), "sync.")]
		raw, _ := json.Marshal(it)
		its = append(its, wsync.BundleItem{Kind: kind, Payload: raw})
	}
	b, _ := wsync.EncodeBundle(trDevice, its)
	return b
}

// transcripts are the golden conversations of docs/protocol/transcripts/.
var transcripts = []struct {
	name, title string
	run         func(tr *transcript)
}{
	{"sale", "A sale: one payment request, one answer", func(tr *transcript) {
		tr.publish(wsync.RequestTopic(trDevice), trPay(trKey(1), 12000, ""), "the sale, after it was committed on the device")
		tr.answer("approved")
	}},
	{"bundle", "A bundle: three messages of different kinds in one publish, answered in one result batch", func(tr *transcript) {
		q := wsync.QueryRequest{V: 1, Key: trKey(2), Device: trDevice, AskedAt: time.Now().UTC()}
		a := wsync.AttemptRecord{V: 1, Key: trKey(3), Device: trDevice, AmountMinor: 3500, Currency: "KRW", Outcome: wsync.AttemptCancelled, CreatedAt: time.Now().UTC()}
		tr.publish(wsync.BundleTopic(trDevice), trBundle(trPay(trKey(1), 12000, ""), q, a), "a backlog drained in one publish")
		tr.answer("one result per item, in one result batch")
	}},
	{"result-batch", "A result batch: three payments decided in one ledger transaction, answered in one message", func(tr *transcript) {
		tr.publish(wsync.BundleTopic(trDevice), trBundle(trPay(trKey(1), 12000, ""), trPay(trKey(2), 2_000_000, ""), trPay(trKey(3), 500, "")), "three sales")
		tr.answer("approved, declined (over posgw's limit), approved")
	}},
	{"in-doubt-query-reversal", "In doubt → query → reversal: the device missed the answer, asks, and voids the sale", func(tr *transcript) {
		tr.publish(wsync.RequestTopic(trDevice), trPay(trKey(1), 12000, ""), "")
		tr.answer("approved, but the device lost its connection before it arrived")
		tr.publish(trUp(wsync.KindQuery), wsync.QueryRequest{V: 1, Key: trKey(1), Device: trDevice, AskedAt: time.Now().UTC()}, "the device settles the in-doubt sale")
		tr.answer("the stored status, with the first decided_at")
		tr.publish(trUp(wsync.KindReversal), wsync.ReversalRequest{V: 1, Key: trKey(1), Device: trDevice, AmountMinor: 12000, Currency: "KRW", Scheme: "alipay", Reason: "voided by the clerk", CreatedAt: time.Now().UTC()}, "the clerk voids it")
		tr.answer("reversed")
		tr.publish(trUp(wsync.KindQuery), wsync.QueryRequest{V: 1, Key: trKey(1), Device: trDevice, AskedAt: time.Now().UTC()}, "")
		tr.answer("reversed, decided_at = the reversal's")
	}},
	{"reversal-before-request", "A reversal before its request: the key is blocked, the late request is never charged", func(tr *transcript) {
		tr.publish(trUp(wsync.KindReversal), wsync.ReversalRequest{V: 1, Key: trKey(1), Device: trDevice, AmountMinor: 12000, Currency: "KRW", Scheme: "alipay", Reason: "no answer within 30s", CreatedAt: time.Now().UTC()}, "the device gave up before the request arrived")
		tr.answer("reversed: the key is recorded as reversed")
		tr.publish(wsync.RequestTopic(trDevice), trPay(trKey(1), 12000, ""), "the request, late")
		tr.answer("reversed, not charged")
	}},
	{"refund", "A refund: partial, resent, and one above the rest", func(tr *transcript) {
		tr.publish(wsync.RequestTopic(trDevice), trPay(trKey(1), 12000, ""), "")
		tr.answer("approved")
		r := wsync.RefundRequest{V: 1, Key: trKey(2), Device: trDevice, OriginalKey: trKey(1), AmountMinor: 4000, Currency: "KRW", Reason: "one item returned", CreatedAt: time.Now().UTC()}
		tr.publish(trUp(wsync.KindRefund), r, "refund 4,000 of 12,000")
		tr.answer("approved")
		tr.publish(trUp(wsync.KindRefund), r, "the same refund resent")
		tr.answer("the stored answer")
		tr.publish(trUp(wsync.KindRefund), wsync.RefundRequest{V: 1, Key: trKey(3), Device: trDevice, OriginalKey: trKey(1), AmountMinor: 9000, Currency: "KRW", CreatedAt: time.Now().UTC()}, "refund 9,000: more than the 8,000 left")
		tr.answer("declined, and stored")
	}},
	{"batch-mismatch", "A batch close whose totals differ from the cloud's", func(tr *transcript) {
		b := "019a9000-2222-7000-8000-000000000007"
		tr.publish(wsync.RequestTopic(trDevice), trPay(trKey(1), 12000, b), "")
		tr.answer("approved")
		tr.publish(wsync.RequestTopic(trDevice), trPay(trKey(2), 2_000_000, b), "")
		tr.answer("declined (over posgw's limit)")
		now := time.Now().UTC()
		c := wsync.BatchClose{V: 1, Key: b, Device: trDevice, Number: 7, OpenedAt: now.Add(-time.Hour), ClosedAt: now,
			Totals: []wsync.BatchTotal{{Scheme: "alipay", Currency: "KRW", SalesCount: 2, SalesMinor: 2012000}}}
		tr.publish(trUp(wsync.KindBatch), c, "the device counted the declined sale (stored offline, say)")
		tr.answer("declined with what differs")
		tr.publish(trUp(wsync.KindBatch), c, "resent")
		tr.answer("the stored answer")
	}},
}

// TestTranscripts runs each golden conversation against posgw over a real broker and
// compares it, times normalised, with docs/protocol/transcripts/NAME.md (-update
// rewrites them).
func TestTranscripts(t *testing.T) {
	for _, sc := range transcripts {
		t.Run(sc.name, func(t *testing.T) {
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
			g, err := New(Config{BrokerURL: b.URL(), Ledger: l})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { g.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			waitFor(t, g.Ready)
			tr := &transcript{t: t, changed: make(chan struct{}, 1)}
			tr.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("posd-" + trDevice))
			if tok := tr.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			defer tr.c.Disconnect(50)
			if tok := tr.c.Subscribe(wsync.ResultTopic(trDevice), 1, func(_ mqtt.Client, m mqtt.Message) {
				tr.mu.Lock()
				tr.got = append(tr.got, m.Payload())
				tr.mu.Unlock()
				select {
				case tr.changed <- struct{}{}:
				default:
				}
			}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			sc.run(tr)
			got := normalise(fmt.Sprintf("# Transcript: %s\n\n%s. Device `%s`, cloud posgw; `→` device to cloud, `←` cloud to device.\nProduced by `go test ./gateway -run TestTranscripts -update`; times are normalised\n(each distinct time is replaced, in order, by 16:40:00Z plus one second each), so\nequal times stay equal.\n\n%s",
				sc.name, sc.title, trDevice, strings.Join(tr.lines, "\n")))
			path := filepath.Join("..", "docs", "protocol", "transcripts", sc.name+".md")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (generate with -update)", err)
			}
			if string(want) != got {
				t.Errorf("%s differs from the conversation (rerun with -update if the change is intended):\n%s", path, got)
			}
		})
	}
}

func trUp(kind string) string {
	t, _ := wsync.UpTopic(trDevice, kind)
	return t
}
