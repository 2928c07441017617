package conformance

import (
	"context"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/minicloud"
	"github.com/walletless/walletless/internal/wirecheck"
)

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	// The kit's own requests are malformed on purpose; the cloud's answers are
	// checked.
	wirecheck.Watch(t, b.URL(), wirecheck.Options{Skip: func(topic string) bool { return !strings.HasSuffix(topic, "/payments/result") }})
	return b
}

// posgwCloud runs posgw's gateway in-process on one ledger, with stop and start hooks.
func posgwCloud(t *testing.T, brokerURL string) (stop, start func(context.Context) error) {
	t.Helper()
	l, err := gateway.OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var cancel context.CancelFunc
	var done chan struct{}
	start = func(context.Context) error {
		// A new client id at each start, as posgw makes by default: a restart under
		// the same id races the broker's cleanup of the old connection, which can
		// drop the new connection's subscriptions (mochi v2.7.9 checks IsTakenOver
		// before it unsubscribes the old client by id).
		g, err := gateway.New(gateway.Config{BrokerURL: brokerURL, Ledger: l})
		if err != nil {
			return err
		}
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan struct{})
		go func() { g.Run(ctx); close(done) }()
		for deadline := time.Now().Add(10 * time.Second); !g.Ready(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("posgw not ready within 10s")
			}
		}
		return nil
	}
	stop = func(context.Context) error { cancel(); <-done; return nil }
	if err := start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(context.Background()) })
	return stop, start
}

func verdicts(rs []Result) (failed, skipped []string) {
	for _, r := range rs {
		switch r.Verdict {
		case Fail:
			failed = append(failed, r.Name)
		case Skip:
			skipped = append(skipped, r.Name)
		}
	}
	sort.Strings(failed)
	return failed, skipped
}

func report(t *testing.T, rs []Result) {
	t.Helper()
	for _, r := range rs {
		if r.Verdict != Pass {
			t.Logf("%s: %s: %s", r.Name, r.Verdict, r.Detail)
		}
	}
}

// TestPosgwPasses: the reference cloud, in-process, passes every scenario, the
// restart included (the hooks stop and start its gateway on the same ledger).
func TestPosgwPasses(t *testing.T) {
	b := startBroker(t)
	stop, start := posgwCloud(t, b.URL())
	rs, err := Run(context.Background(), Config{BrokerURL: b.URL(), StopCloud: stop, StartCloud: start, Quiet: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	report(t, rs)
	if failed, skipped := verdicts(rs); len(failed)+len(skipped) > 0 || len(rs) != len(Scenarios()) {
		t.Fatalf("posgw: %d results, failed %v, skipped %v", len(rs), failed, skipped)
	}
	for _, r := range rs {
		if len(r.Evidence) == 0 {
			t.Errorf("%s passed without evidence", r.Name)
		}
		for _, x := range r.Evidence {
			if strings.Contains(x.Payload, "281234567890123456") {
				t.Fatalf("%s: the evidence shows a full payment code: %s", r.Name, x.Payload)
			}
		}
	}
}

// TestWrongCloudsFail: the small cloud written from the document passes everything;
// each deliberate flaw fails exactly the scenarios that check that rule.
func TestWrongCloudsFail(t *testing.T) {
	cases := []struct {
		name  string
		flaws minicloud.Flaws
		fail  []string
	}{
		{"correct", minicloud.Flaws{}, nil},
		{"redecides replays", minicloud.Flaws{RedecideReplays: true}, []string{"cloud-restart", "replay", "stale-request"}},
		{"no staleness rule", minicloud.Flaws{NoStaleness: true}, []string{"batch-match", "batch-mismatch", "reversal-declined", "stale-request"}},
		{"persistent session", minicloud.Flaws{Persistent: true}, []string{"cloud-restart"}},
		{"no tombstone", minicloud.Flaws{NoTombstone: true}, []string{"reversal-before-request"}},
		{"unbounded refunds", minicloud.Flaws{UnboundedRefund: true}, []string{"refund-above-sale"}},
		{"answers malformed", minicloud.Flaws{AnswerMalformed: true}, []string{"malformed", "oversize"}},
		{"old document", minicloud.OldDocument, []string{"batch-match", "batch-mismatch", "cloud-restart", "reversal-declined", "stale-request"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startBroker(t)
			state := minicloud.NewState()
			var cloud *minicloud.Cloud
			start := func(context.Context) error {
				var err error
				cloud, err = minicloud.Start(minicloud.Config{BrokerURL: b.URL(), State: state, Flaws: c.flaws})
				return err
			}
			stop := func(context.Context) error {
				if cloud != nil {
					cloud.Stop()
				}
				return nil
			}
			if err := start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer func() { stop(context.Background()) }()
			rs, err := Run(context.Background(), Config{BrokerURL: b.URL(), StopCloud: stop, StartCloud: start,
				Timeout: 3 * time.Second, Quiet: 100 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			failed, skipped := verdicts(rs)
			if len(skipped) > 0 || strings.Join(failed, ",") != strings.Join(c.fail, ",") {
				report(t, rs)
				t.Fatalf("failed %v (skipped %v), want exactly %v", failed, skipped, c.fail)
			}
		})
	}
}

// TestRunPattern: -run selects scenarios; the restart scenario is skipped without
// hooks.
func TestRunPattern(t *testing.T) {
	b := startBroker(t)
	posgwCloud(t, b.URL())
	rs, err := Run(context.Background(), Config{BrokerURL: b.URL()}, regexp.MustCompile(`^(sale|cloud-restart)$`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Verdict != Pass || rs[1].Verdict != Skip || !strings.Contains(rs[1].Detail, "-stop-cmd") {
		t.Fatalf("results %+v", rs)
	}
}
