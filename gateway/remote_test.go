package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	wsync "github.com/walletless/walletless/sync"
)

const testToken = "0123456789abcdef-test-token"

// ledgerServer is a Server on a real loopback listener over a real bbolt file.
type ledgerServer struct {
	ledger *Ledger
	url    string
	addr   string
	stop   func()
}

func startLedgerServer(t *testing.T, addr, token string) *ledgerServer {
	t.Helper()
	l, err := OpenLedger(filepath.Join(t.TempDir(), "posgw.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return serveLedger(t, l, addr, token)
}

func serveLedger(t *testing.T, l *Ledger, addr, token string) *ledgerServer {
	t.Helper()
	return serveLedgerTLS(t, l, addr, token, nil, nil)
}

// serveLedgerTLS is serveLedger speaking HTTPS when tc is set, logging to log.
func serveLedgerTLS(t *testing.T, l *Ledger, addr, token string, tc *tls.Config, log *slog.Logger) *ledgerServer {
	t.Helper()
	s, err := NewServer(ServerConfig{Local: NewLocal(l, Rules{MaxAge: -1}, nil), Token: token, TLS: tc, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
	}
	ls := &ledgerServer{ledger: l, url: scheme + ln.Addr().String(), addr: ln.Addr().String()}
	ls.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(ls.stop)
	return ls
}

func newRemote(t *testing.T, url, token string) *Remote {
	t.Helper()
	r, err := NewRemote(RemoteConfig{URL: url, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// messagesOf turns the steps into decoded messages as parse would.
func messagesOf(t *testing.T, steps []kindStep) []Message {
	t.Helper()
	out := make([]Message, 0, len(steps))
	for _, s := range steps {
		raw, err := json.Marshal(s.msg)
		if err != nil {
			t.Fatal(err)
		}
		msg, key, dev, err := wsync.DecodeUp(s.kind, raw)
		if err != nil || dev != s.device {
			t.Fatalf("%s: %v (device %s)", s.name, err, dev)
		}
		out = append(out, Message{Kind: s.kind, Device: s.device, Key: key, Msg: msg})
	}
	return out
}

func entriesOf(t *testing.T, forEach func(func(Entry) error) error) []Entry {
	t.Helper()
	var out []Entry
	if err := forEach(func(e Entry) error {
		e.DecidedAt, e.ReversedAt = time.Time{}, time.Time{}
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRemoteSameAnswersAsLocal: every kind of message, as one batch, gets the same
// answers through the ledger server as from a Local ledger, and both ledgers end up
// holding the same records; the listings through the server match the file.
func TestRemoteSameAnswersAsLocal(t *testing.T) {
	steps := kindSteps()
	msgs := messagesOf(t, steps)
	local := NewLocal(newTestGateway(t).cfg.Ledger, Rules{MaxAge: -1}, nil)
	want, err := local.Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	srv := startLedgerServer(t, "127.0.0.1:0", testToken)
	remote := newRemote(t, srv.url, testToken)
	got, err := remote.Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d answers, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Ignored != "" || g.Fresh != w.Fresh || g.Result.Status != w.Result.Status || g.Result.Reason != w.Result.Reason ||
			g.Result.Key != w.Result.Key || g.Result.Kind != w.Result.Kind || g.Result.V != wsync.Version {
			t.Errorf("%s: remote %+v, local %+v", steps[i].name, g, w)
		}
		if !strings.Contains(g.Result.Reason, steps[i].reason) || g.Result.Status != steps[i].status {
			t.Errorf("%s: remote answered %s %q, want %s %q", steps[i].name, g.Result.Status, g.Result.Reason, steps[i].status, steps[i].reason)
		}
	}
	le, re := entriesOf(t, local.Ledger().ForEach), entriesOf(t, srv.ledger.ForEach)
	if fmt.Sprint(le) != fmt.Sprint(re) {
		t.Errorf("ledgers differ:\nlocal  %+v\nremote %+v", le, re)
	}
	if listed := entriesOf(t, remote.ForEach); fmt.Sprint(listed) != fmt.Sprint(re) {
		t.Errorf("listing differs from the file:\n%+v\n%+v", listed, re)
	}
	lt, _ := local.Ledger().Totals()
	rt, err := remote.Totals()
	if err != nil || fmt.Sprint(lt) != fmt.Sprint(rt) {
		t.Errorf("totals: %v\nlocal  %+v\nremote %+v", err, lt, rt)
	}
	var attempts, batches int
	if err := remote.ForEachAttempt(func(Attempt) error { attempts++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := remote.ForEachBatch(func(Batch) error { batches++; return nil }); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || batches != 2 {
		t.Errorf("listed %d attempts and %d batches, want 1 and 2", attempts, batches)
	}
	// A resend of the whole batch decides nothing again.
	again, err := remote.Apply(context.Background(), msgs[:1])
	if err != nil || again[0].Fresh || again[0].Result.DecidedAt != got[0].Result.DecidedAt {
		t.Errorf("resend: %v %+v (first %+v)", err, again, got[0])
	}
}

// TestRemoteSplitsLargeBatches: more messages than one call may carry are sent in
// several calls, answered in order.
func TestRemoteSplitsLargeBatches(t *testing.T) {
	srv := startLedgerServer(t, "127.0.0.1:0", testToken)
	remote := newRemote(t, srv.url, testToken)
	var steps []kindStep
	for i := 0; i < MaxApplyMessages+10; i++ {
		steps = append(steps, kindStep{device: "d1", kind: wsync.KindPayment, msg: sale("d1", fmt.Sprintf("k%05d", i), 100, "KRW", t0)})
	}
	msgs := messagesOf(t, steps)
	got, err := remote.Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range got {
		if a.Result.Key != msgs[i].Key || !a.Fresh {
			t.Fatalf("answer %d: %+v", i, a)
		}
	}
	if n := len(entriesOf(t, srv.ledger.ForEach)); n != len(msgs) {
		t.Errorf("%d entries, want %d", n, len(msgs))
	}
}

// TestRemoteToken: a missing or wrong token is refused (401) and changes nothing.
func TestRemoteToken(t *testing.T) {
	srv := startLedgerServer(t, "127.0.0.1:0", testToken)
	msgs := messagesOf(t, kindSteps()[:1])
	for _, tok := range []string{"", "wrong-token-of-some-length", testToken + "x", testToken[:len(testToken)-1]} {
		_, err := newRemote(t, srv.url, tok).Apply(context.Background(), msgs)
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: err %v, want ErrUnauthorized", tok, err)
		}
		if err := newRemote(t, srv.url, tok).Ping(context.Background()); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("ping with token %q: %v", tok, err)
		}
		if err := newRemote(t, srv.url, tok).ForEach(func(Entry) error { return nil }); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("listing with token %q: %v", tok, err)
		}
	}
	if n := len(entriesOf(t, srv.ledger.ForEach)); n != 0 {
		t.Fatalf("refused calls wrote %d entries", n)
	}
	if _, err := newRemote(t, srv.url, testToken).Apply(context.Background(), msgs); err != nil {
		t.Fatalf("right token: %v", err)
	}
}

func TestReadTokenAndCheckListen(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content string
		ok      bool
	}{
		{testToken + "\n", true},
		{"  " + testToken + "  ", true},
		{"", false},
		{"short\n", false},
		{"0123456789abcdef ghijk", false}, // inner space
	} {
		p := filepath.Join(dir, "tok")
		os.WriteFile(p, []byte(c.content), 0o600)
		tok, err := ReadToken(p)
		if (err == nil) != c.ok || (c.ok && tok != testToken) {
			t.Errorf("ReadToken(%q) = %q, %v", c.content, tok, err)
		}
		if err != nil && !c.ok && !errors.Is(err, ErrBadToken) {
			t.Errorf("ReadToken(%q): %v is not ErrBadToken", c.content, err)
		}
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing token file accepted")
	}
	for _, c := range []struct {
		addr, token string
		mutual      bool
		ok          bool
	}{
		{"127.0.0.1:7601", "", false, true},
		{"[::1]:7601", "", false, true},
		{"localhost:7601", "", false, true},
		{":7601", "", false, false},
		{"0.0.0.0:7601", "", false, false},
		{"10.0.0.5:7601", "", false, false},
		{"10.0.0.5:7601", testToken, false, true},
		{":7601", testToken, false, true},
		{"10.0.0.5:7601", "", true, true}, // client certificates authenticate
		{"10.0.0.5:7601", testToken, true, true},
		{"nonsense", testToken, false, false},
		{"nonsense", "", true, false},
	} {
		err := CheckListen(c.addr, c.token, c.mutual)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, %q, %v) = %v", c.addr, c.token, c.mutual, err)
		}
		if err != nil && c.addr != "nonsense" && !errors.Is(err, ErrInsecureListen) {
			t.Errorf("CheckListen(%q): %v is not ErrInsecureListen", c.addr, err)
		}
	}
}

func post(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/apply", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestServerRefusesBadRequests: garbage, oversize or otherwise bad bodies get a clear
// 4xx and change nothing; an invalid message inside a good request is refused alone.
func TestServerRefusesBadRequests(t *testing.T) {
	srv := startLedgerServer(t, "127.0.0.1:0", testToken)
	good, _ := json.Marshal(sale("d1", "k1", 100, "KRW", t0))
	msg := func(kind, dev string, payload []byte) string {
		return fmt.Sprintf(`{"kind":%q,"device":%q,"payload":%s}`, kind, dev, payload)
	}
	many := strings.Repeat(msg("payment", "d1", good)+",", MaxApplyMessages) + msg("payment", "d1", good)
	for _, c := range []struct {
		name, body string
		status     int
		errPart    string
	}{
		{"garbage", "garbage", 400, "malformed"},
		{"empty", "", 400, "malformed"},
		{"unknown field", `{"v":1,"messages":[` + msg("payment", "d1", good) + `],"extra":1}`, 400, "unknown field"},
		{"trailing data", `{"v":1,"messages":[` + msg("payment", "d1", good) + `]} {}`, 400, "after"},
		{"version 2", `{"v":2,"messages":[` + msg("payment", "d1", good) + `]}`, 400, "version"},
		{"no messages", `{"v":1,"messages":[]}`, 400, "messages"},
		{"too many messages", `{"v":1,"messages":[` + many + `]}`, 400, "messages"},
		{"oversize", `{"v":1,"messages":[` + msg("payment", "d1", []byte(`"`+strings.Repeat("x", MaxApplyBody)+`"`)) + `]}`, 413, "larger"},
	} {
		status, body := post(t, srv.url, testToken, c.body)
		if status != c.status || !strings.Contains(body, c.errPart) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, status, body, c.status, c.errPart)
		}
	}
	if status, _ := post(t, srv.url, "", "garbage"); status != 401 {
		t.Errorf("garbage without a token: %d, want 401", status)
	}
	resp, err := http.Get(srv.url + "/v1/apply")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/apply: %d", resp.StatusCode)
	}
	if n := len(entriesOf(t, srv.ledger.ForEach)); n != 0 {
		t.Fatalf("bad requests wrote %d entries", n)
	}
	// One good message among bad ones: only it is applied; the others are refused
	// with a reason, the client never being trusted.
	other, _ := json.Marshal(sale("d2", "k2", 100, "KRW", t0))
	zero, _ := json.Marshal(sale("d1", "k3", 0, "KRW", t0))
	status, body := post(t, srv.url, testToken, `{"v":1,"messages":[`+strings.Join([]string{
		msg("payment", "d1", other), // claims d2, sent for d1
		msg("payment", "d1", zero),  // invalid amount
		msg("bundle", "d1", good),   // not a message kind
		msg("payment", "d/1", good), // bad device id
		msg("payment", "d1", good),
	}, ",")+`]}`)
	var out applyResponse
	if status != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Answers) != 5 {
		t.Fatalf("mixed request: %d %s", status, body)
	}
	for i, a := range out.Answers[:4] {
		if a.Ignored == "" || a.Result.Key != "" {
			t.Errorf("bad message %d answered %+v", i, a)
		}
	}
	if a := out.Answers[4]; a.Ignored != "" || a.Result.Key != "k1" || a.Result.Status != wsync.ResultApproved || !a.Fresh {
		t.Errorf("good message answered %+v", a)
	}
	if es := entriesOf(t, srv.ledger.ForEach); len(es) != 1 || es[0].Key != "k1" {
		t.Errorf("ledger holds %+v, want k1 only", es)
	}
}

// TestRemoteServerDown: with nothing listening, or a listener that never answers,
// Apply returns ErrLedgerUnreachable; it does not panic or hang beyond its timeout.
func TestRemoteServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	msgs := messagesOf(t, kindSteps()[:1])
	if _, err := newRemote(t, "http://"+addr, testToken).Apply(context.Background(), msgs); !errors.Is(err, ErrLedgerUnreachable) {
		t.Errorf("nothing listening: %v", err)
	}
	// A server that accepts and says nothing.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r, err := NewRemote(RemoteConfig{URL: "http://" + mute.Addr().String(), Token: testToken, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(context.Background(), msgs); !errors.Is(err, ErrLedgerUnreachable) {
		t.Errorf("mute server: %v", err)
	}
	// A cancelled context ends the call too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newRemote(t, "http://"+mute.Addr().String(), testToken).Apply(ctx, msgs); err == nil {
		t.Error("cancelled call succeeded")
	}
	for _, bad := range []string{"", "ftp://x", "http://", "127.0.0.1:7601"} {
		if _, err := NewRemote(RemoteConfig{URL: bad}); err == nil {
			t.Errorf("NewRemote(%q) accepted", bad)
		}
	}
}

// recorder is an MQTT client that records publishes; everything else is unused.
type recorder struct {
	mqtt.Client
	mu   sync.Mutex
	pubs map[string][]wsync.PaymentResult // guarded by mu
}

type doneToken struct{ mqtt.Token }

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Error() error                   { return nil }

func (r *recorder) Publish(topic string, _ byte, _ bool, payload any) mqtt.Token {
	rs, errs := wsync.DecodeResults(payload.([]byte))
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(errs) > 0 {
		panic(fmt.Sprint(errs))
	}
	r.pubs[topic] = append(r.pubs[topic], rs...)
	return doneToken{}
}

// TestGatewayRemoteLedgerDown: a gateway whose ledger server is down answers
// nothing, logs the failure once per burst, and answers again (from one ResultBatch
// per device) once the server is back on the same address.
func TestGatewayRemoteLedgerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	g, err := New(Config{BrokerURL: "tcp://127.0.0.1:1", Applier: newRemote(t, "http://"+addr, testToken),
		Log: slog.New(slog.NewTextHandler(lockedBuf{&logMu, &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var batch []mqtt.Message
	for _, dev := range []string{"d1", "d2"} {
		for i := 0; i < 3; i++ {
			raw, _ := json.Marshal(sale(dev, fmt.Sprintf("%s-k%d", dev, i), 100, "KRW", t0))
			topic, _ := wsync.UpTopic(dev, wsync.KindPayment)
			batch = append(batch, fakeMsg{topic, raw})
		}
	}
	rec := &recorder{pubs: map[string][]wsync.PaymentResult{}}
	for i := 0; i < 3; i++ {
		g.handleBatch(context.Background(), rec, batch)
	}
	logMu.Lock()
	failures := strings.Count(logs.String(), "ledger failed")
	logMu.Unlock()
	if failures != 1 || len(rec.pubs) != 0 || g.Stats().Unanswered != 18 {
		t.Fatalf("ledger down: %d failure lines (want 1), %d publishes, stats %+v", failures, len(rec.pubs), g.Stats())
	}
	srv := startLedgerServer(t, addr, testToken)
	g.handleBatch(context.Background(), rec, batch)
	g.wg.Wait()
	logMu.Lock()
	back := strings.Count(logs.String(), "ledger works again")
	logMu.Unlock()
	if back != 1 {
		t.Errorf("%d 'works again' lines", back)
	}
	for _, dev := range []string{"d1", "d2"} {
		rs := rec.pubs[wsync.ResultTopic(dev)]
		if len(rs) != 3 || rs[0].Status != wsync.ResultApproved {
			t.Errorf("%s got %+v", dev, rs)
		}
	}
	if s := g.Stats(); s.Decided != 6 || s.Answered != 6 {
		t.Errorf("stats %+v", s)
	}
	if n := len(entriesOf(t, srv.ledger.ForEach)); n != 6 {
		t.Errorf("%d entries", n)
	}
}

type lockedBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// FuzzDecodeApply: the ledger server's request decoder never panics, every message
// it accepts is valid on its own, and the handler answers 200 with one answer per
// message or a 4xx.
func FuzzDecodeApply(f *testing.F) {
	good, _ := json.Marshal(sale("d1", "k1", 100, "KRW", t0))
	f.Add([]byte(`{"v":1,"messages":[{"kind":"payment","device":"d1","payload":` + string(good) + `}]}`))
	f.Add([]byte(`{"v":1,"messages":[{"kind":"query","device":"d1","payload":{"v":1,"key":"k1","device":"d1"}},{"kind":"refund","device":"d1","payload":{"v":1}}]}`))
	f.Add([]byte(`{"v":1,"messages":[{"kind":"batch","device":"d1","payload":{"v":1,"key":"b","device":"d1","opened_at":"2026-01-01T00:00:00Z","closed_at":"2026-01-02T00:00:00Z","totals":[]}}]}`))
	f.Add([]byte(`{"v":1,"messages":[]}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`garbage`))
	l, err := OpenLedger(filepath.Join(f.TempDir(), "posgw.db"), false)
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	s, err := NewServer(ServerConfig{Local: NewLocal(l, Rules{MaxAge: -1}, nil), Token: testToken})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, ignored, err := decodeApply(bytes.NewReader(body))
		if err == nil {
			if len(msgs) == 0 || len(msgs) != len(ignored) {
				t.Fatalf("%d messages, %d verdicts", len(msgs), len(ignored))
			}
			for i, m := range msgs {
				if ignored[i] != "" {
					continue
				}
				if !wsync.ValidDeviceID(m.Device) || m.Key == "" || m.Msg == nil {
					t.Fatalf("accepted %+v", m)
				}
			}
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/apply", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		switch {
		case err == nil && w.Code == 200:
			var out applyResponse
			if json.Unmarshal(w.Body.Bytes(), &out) != nil || len(out.Answers) != len(msgs) {
				t.Fatalf("200 with %s", w.Body)
			}
		case err != nil && w.Code == 400:
		default:
			t.Fatalf("decoder err %v, handler %d %s", err, w.Code, w.Body)
		}
	})
}
