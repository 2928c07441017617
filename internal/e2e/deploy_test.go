package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/internal/testpki"
	wsync "github.com/walletless/walletless/sync"
)

func topicsOf(ms []mqtt.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic()+" "+string(m.Payload()))
	}
	return out
}

// TestDeployACLConfinesDevices runs mosquitto with deploy/mosquitto.conf and
// deploy/walletless.acl and proves that device A can neither read nor write device B's
// topics. Each check ends with a marker message sent after the forbidden one on the
// same path, so "nothing arrived" is known without waiting for a timeout.
func TestDeployACLConfinesDevices(t *testing.T) {
	m := newMosquitto(t, mosqOpts{persistence: true, users: []string{"dev-a", "dev-b"}})
	a, b := wsync.ResultTopic("dev-a"), wsync.ResultTopic("dev-b")
	reqA, reqB := wsync.RequestTopic("dev-a"), wsync.RequestTopic("dev-b")

	gw := mustConnect(t, m.URL(), "posgw", "posgw-acl")
	gw.sub(t, "walletless/v1/devices/+/payments/request", "walletless/v1/devices/+/bundle")
	fleet := mustConnect(t, m.URL(), "posfleet", "fleet-acl")
	fleet.sub(t, "walletless/v1/devices/+/status", "walletless/v1/devices/+/heartbeat")
	devB := mustConnect(t, m.URL(), "dev-b", "posd-dev-b")
	devB.sub(t, b)
	devA := mustConnect(t, m.URL(), "dev-a", "posd-dev-a")
	granted := devA.sub(t, a, b, "walletless/v1/devices/+/payments/request", "walletless/v1/devices/#", "#")
	t.Logf("SUBACK for device A: %v", granted)
	if granted[a] != 1 {
		t.Fatalf("device A may not subscribe to its own results: %v", granted)
	}

	// A cannot read B's results.
	gw.pub(t, b, false, "result-for-b")
	devB.waitPayload(t, "result-for-b")
	gw.pub(t, a, false, "marker-1")
	if got := devA.waitPayload(t, "marker-1"); len(got) > 0 {
		t.Errorf("device A read %v", topicsOf(got))
	}

	// A cannot read B's requests.
	devB.pub(t, reqB, false, "request-of-b")
	gw.waitPayload(t, "request-of-b")
	gw.pub(t, a, false, "marker-2")
	if got := devA.waitPayload(t, "marker-2"); len(got) > 0 {
		t.Errorf("device A read %v", topicsOf(got))
	}

	// B may write its own bundles.
	devB.pub(t, wsync.BundleTopic("dev-b"), false, "bundle-of-b")
	gw.waitPayload(t, "bundle-of-b")

	// A cannot write B's requests, bundles, status or heartbeat.
	devA.pub(t, reqB, false, "spoofed-request")
	devA.pub(t, wsync.BundleTopic("dev-b"), false, "spoofed-bundle")
	devA.pub(t, wsync.StatusTopic("dev-b"), true, "spoofed-status")
	devA.pub(t, wsync.HeartbeatTopic("dev-b"), false, "spoofed-heartbeat")
	devA.pub(t, reqA, false, "marker-3")
	if got := gw.waitPayload(t, "marker-3"); len(got) > 0 {
		t.Errorf("posgw received %v", topicsOf(got))
	}
	devA.pub(t, wsync.HeartbeatTopic("dev-a"), false, "marker-4")
	if got := fleet.waitPayload(t, "marker-4"); len(got) > 0 {
		t.Errorf("fleet received %v", topicsOf(got))
	}

	// A cannot write B's results (nor its own: only the cloud answers).
	devA.pub(t, b, false, "spoofed-result")
	devA.pub(t, a, false, "self-result")
	gw.pub(t, b, false, "marker-5")
	if got := devB.waitPayload(t, "marker-5"); len(got) > 0 {
		t.Errorf("device B received %v", topicsOf(got))
	}
	gw.pub(t, a, false, "marker-6")
	if got := devA.waitPayload(t, "marker-6"); len(got) > 0 {
		t.Errorf("device A received %v", topicsOf(got))
	}

	// No anonymous clients, no wrong passwords.
	if _, err := connect(t, m.URL(), "", "anon", nil); err == nil {
		t.Error("anonymous client accepted")
	}
	bad := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("bad").SetUsername("dev-a").SetPassword("wrong").SetConnectTimeout(5 * time.Second))
	if tok := bad.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		bad.Disconnect(0)
		t.Error("wrong password accepted")
	}
}

// TestDeployMutualTLS runs a device link over the deploy file's mutual-TLS listener
// (its certificate's CN is its device id and its ACL user) against posgw on the plain
// listener.
func TestDeployMutualTLS(t *testing.T) {
	m := newMosquitto(t, mosqOpts{persistence: true, tls: true})
	gw := startGateways(t, m.URL(), 1)
	cert, key := m.pki.issue(t, "dev-tls", false)
	d := newTestDevice(t, filepath.Join(t.TempDir(), "posd.db"), wsync.Config{
		BrokerURL: m.TLSURL(), DeviceID: "dev-tls", CAFile: m.pki.ca, CertFile: cert, KeyFile: key,
	})
	stop := d.run()
	defer stop()
	for i := 0; i < 5; i++ {
		d.sale(t, i, int64(1000+i))
	}
	waitFor(t, "5 results over mutual TLS", 30*time.Second, func() bool { return d.answered() == 5 })
	waitFor(t, "outbox drained", 10*time.Second, func() bool { return d.depth() == 0 })
	if n := len(gw.entries(t)); n != 5 {
		t.Errorf("ledger has %d entries, want 5", n)
	}

	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(m.pki.ca)
	roots.AppendCertsFromPEM(pemCA)
	// Without a client certificate the broker refuses the handshake.
	if _, err := connect(t, m.TLSURL(), "", "no-cert", &tls.Config{RootCAs: roots}); err == nil {
		t.Error("client without a certificate accepted")
	}
	// A certificate from another CA is refused too.
	rc, rk := testpki.New(t, t.TempDir(), "rogue").Issue(t, "dev-tls", false)
	pair, err := tls.LoadX509KeyPair(rc, rk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, m.TLSURL(), "", "rogue", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}); err == nil {
		t.Error("certificate from a foreign CA accepted")
	}
	// The device's TLS identity is confined like a password user: it cannot write
	// another device's requests.
	pair, _ = tls.LoadX509KeyPair(cert, key)
	spy, err := connect(t, m.TLSURL(), "", "posd-dev-tls-2", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	watcher := mustConnect(t, m.URL(), "posgw", "posgw-watch")
	watcher.sub(t, "walletless/v1/devices/+/payments/request")
	spy.pub(t, wsync.RequestTopic("dev-other"), false, "spoofed")
	spy.pub(t, wsync.RequestTopic("dev-tls"), false, "marker")
	if got := watcher.waitPayload(t, "marker"); len(got) > 0 {
		t.Errorf("posgw received %v", topicsOf(got))
	}
	if strings.Contains(d.logs.String(), "281234567890123456") {
		t.Error("a log line holds a full payment code")
	}
}
