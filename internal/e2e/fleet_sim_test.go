package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	wsync "github.com/walletless/walletless/sync"
)

// The fleet simulator: many device links in one process, each following the fleet
// wire contract of docs/protocol.md as posd does (retained birth and will, heartbeats
// with groups and config_version, the desired-config slots it subscribes to, signed
// documents verified against the trusted key, versions above the current one only,
// byte-identical redeliveries ignored, a retained report per document). posfleet is
// run against it as a built binary.

// simDevice is one simulated terminal.
type simDevice struct {
	id     string
	groups []string
	trust  minisign.PublicKey
	// reject, when set, makes the device's validation fail for every document (as
	// posd does for a bad merchant.emv_qr), reporting 400 with this reason.
	reject string
	// fail, when set, makes the device apply and then roll back, reporting 500 with
	// this reason (as posd does when new broker settings cannot connect).
	fail string
	// silent devices publish their birth but no heartbeat (a hung posd).
	silent bool
	hb     time.Duration
	client mqtt.Client

	mu      sync.Mutex
	current uint64            // highest version accepted; guarded by mu
	slots   map[string][]byte // topic → document bytes held; guarded by mu
	got     map[uint64]bool   // every version a document carried to this device; guarded by mu
	config  map[string]any    // effective config (merge of the slots); guarded by mu
	stop    chan struct{}
	done    chan struct{}
}

// simFleet is the set of simulated devices on one broker.
type simFleet struct {
	devices map[string]*simDevice
	ids     []string
}

// fleetBroker starts mosquitto with users for the given device ids.
func fleetBroker(t *testing.T, ids []string) *mosq {
	t.Helper()
	return newMosquitto(t, mosqOpts{users: ids})
}

// startSim connects one simulated device per spec.
func startSim(t *testing.T, m *mosq, trust minisign.PublicKey, specs []simSpec) *simFleet {
	t.Helper()
	f := &simFleet{devices: map[string]*simDevice{}}
	var wg sync.WaitGroup
	errs := make(chan error, len(specs))
	for _, s := range specs {
		d := &simDevice{id: s.id, groups: s.groups, trust: trust, reject: s.reject, fail: s.fail, silent: s.silent, hb: 200 * time.Millisecond,
			slots: map[string][]byte{}, got: map[uint64]bool{}, config: map[string]any{}, stop: make(chan struct{}), done: make(chan struct{})}
		f.devices[s.id] = d
		f.ids = append(f.ids, s.id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.start(m.URL()); err != nil {
				errs <- fmt.Errorf("%s: %w", d.id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range f.devices {
			d.close()
		}
	})
	return f
}

// simSpec describes one simulated device.
type simSpec struct {
	id     string
	groups []string
	reject string
	fail   string
	silent bool
}

func (d *simDevice) status(state string) []byte {
	b, _ := json.Marshal(map[string]any{"v": 1, "device": d.id, "state": state, "session": 1, "at": time.Now().UTC(), "version": "1.4.2", "groups": d.groups})
	return b
}

func (d *simDevice) start(url string) error {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(d.id).SetUsername(d.id).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10*time.Second).
		SetBinaryWill(wsync.StatusTopic(d.id), d.status("offline"), 1, true)
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { d.onDoc(msg.Topic(), msg.Payload()) })
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	d.client = c
	if tok := c.Publish(wsync.StatusTopic(d.id), 1, true, d.status("online")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("birth: %v", tok.Error())
	}
	filters := map[string]byte{"walletless/v1/fleet/config/all": 1, "walletless/v1/fleet/config/devices/" + d.id: 1}
	for _, g := range d.groups {
		filters["walletless/v1/fleet/config/groups/"+g] = 1
	}
	if tok := c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	go d.heartbeats()
	return nil
}

func (d *simDevice) heartbeats() {
	defer close(d.done)
	if d.silent {
		<-d.stop
		return
	}
	t := time.NewTicker(d.hb)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.mu.Lock()
		hb := map[string]any{"v": 1, "device": d.id, "session": 1, "at": time.Now().UTC(), "queue_depth": 0, "in_flight": 0,
			"oldest_unsynced_ms": 0, "firmware": "1.4.2", "config_version": fmt.Sprint(d.current), "scanner": "ok", "printer": "ok", "groups": d.groups}
		d.mu.Unlock()
		b, _ := json.Marshal(hb)
		d.client.Publish(wsync.HeartbeatTopic(d.id), 1, false, b)
	}
}

// close ends the device's link; kill makes the broker publish its will.
func (d *simDevice) close() {
	select {
	case <-d.stop:
		return
	default:
	}
	close(d.stop)
	<-d.done
	if d.client != nil && d.client.IsConnected() {
		d.client.Publish(wsync.StatusTopic(d.id), 1, true, d.status("offline")).WaitTimeout(5 * time.Second)
		d.client.Disconnect(100)
	}
}

func (d *simDevice) report(version uint64, code int, reason string) {
	b, _ := json.Marshal(map[string]any{"v": 1, "device": d.id, "version": version, "code": code, "reason": reason, "at": time.Now().UTC()})
	d.client.Publish("walletless/v1/devices/"+d.id+"/config/reported", 1, true, b)
}

// onDoc handles a message on one of the device's desired-config slots.
func (d *simDevice) onDoc(topic string, payload []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(payload) == 0 { // a cleared slot: no document there; the applied config stays
		delete(d.slots, topic)
		return
	}
	var env struct {
		V         int    `json:"v"`
		Document  string `json:"document"`
		Signature string `json:"signature"`
	}
	if json.Unmarshal(payload, &env) != nil || env.V != 1 {
		d.report(d.current, 400, "malformed envelope")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(env.Document)
	if err != nil {
		d.report(d.current, 400, "malformed document encoding")
		return
	}
	if bytes.Equal(d.slots[topic], raw) {
		return // retained redelivery
	}
	var doc struct {
		V         int             `json:"v"`
		Version   uint64          `json:"version"`
		Target    map[string]any  `json:"target"`
		NotBefore *time.Time      `json:"not_before"`
		NotAfter  *time.Time      `json:"not_after"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(raw, &doc) != nil || doc.V != 1 {
		d.report(d.current, 400, "malformed document")
		return
	}
	d.got[doc.Version] = true
	if !minisign.Verify(d.trust, raw, []byte(env.Signature)) {
		d.report(doc.Version, 400, "signature does not verify with a trusted key")
		return
	}
	var slotOK bool
	switch rest := strings.TrimPrefix(topic, "walletless/v1/fleet/config/"); {
	case rest == "all":
		slotOK = doc.Target["all"] == true
	case strings.HasPrefix(rest, "groups/"):
		slotOK = doc.Target["group"] == strings.TrimPrefix(rest, "groups/")
	default:
		slotOK = doc.Target["device"] == d.id
	}
	now := time.Now()
	switch {
	case !slotOK:
		d.report(doc.Version, 400, "document is for another target")
	case doc.NotAfter != nil && now.After(*doc.NotAfter):
		d.report(doc.Version, 400, "document expired")
	case doc.NotBefore != nil && now.Before(*doc.NotBefore):
		d.report(doc.Version, 400, "document not valid yet")
	case doc.Version <= d.current:
		d.report(doc.Version, 400, fmt.Sprintf("replay: version %d is not above %d", doc.Version, d.current))
	case d.reject != "":
		d.report(doc.Version, 400, d.reject)
	default:
		var patch map[string]any
		if json.Unmarshal(doc.Config, &patch) != nil {
			d.report(doc.Version, 400, "config is not an object")
			return
		}
		d.report(doc.Version, 202, "applying")
		if d.fail != "" {
			d.report(doc.Version, 500, d.fail)
			return
		}
		d.slots[topic] = raw
		d.current = doc.Version
		d.config = d.effective()
		d.report(doc.Version, 200, "")
	}
}

// effective merges the held documents: all, then the groups in order, then the device.
func (d *simDevice) effective() map[string]any {
	out := map[string]any{}
	order := []string{"walletless/v1/fleet/config/all"}
	for _, g := range d.groups {
		order = append(order, "walletless/v1/fleet/config/groups/"+g)
	}
	order = append(order, "walletless/v1/fleet/config/devices/"+d.id)
	for _, topic := range order {
		raw, ok := d.slots[topic]
		if !ok {
			continue
		}
		var doc struct {
			Config map[string]any `json:"config"`
		}
		json.Unmarshal(raw, &doc)
		mergePatch(out, doc.Config)
	}
	return out
}

// mergePatch applies an RFC 7386 merge patch to dst.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
			}
			mergePatch(sub, pv)
			dst[k] = sub
		default:
			dst[k] = v
		}
	}
}

// state returns the device's current version, effective config (as JSON) and
// whether a document of version v ever reached it.
func (d *simDevice) state(v uint64) (current uint64, config string, got bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(d.config)
	return d.current, string(b), d.got[v]
}

// posfleetBin builds cmd/posfleet once per test.
func posfleetBin(t *testing.T) string {
	t.Helper()
	return build(t, t.TempDir(), "posfleet")["posfleet"]
}

// runFleet runs posfleet and returns its stdout, stderr and exit code.
func runFleet(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("posfleet %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	t.Logf("posfleet %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, o.String(), e.String())
	return o.String(), e.String(), code
}

// fleetKeys runs posfleet keygen into a temporary directory and returns the key
// file paths and the public key.
func fleetKeys(t *testing.T, bin string) (secret, public string, pub minisign.PublicKey) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, code := runFleet(t, bin, "keygen", "-o", dir, "-json")
	if code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	var res struct {
		S string `json:"secret_key"`
		P string `json:"public_key"`
		T string `json:"trusted_key"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("keygen -json: %v", err)
	}
	if err := pub.UnmarshalText([]byte(res.T)); err != nil {
		t.Fatalf("keygen's trusted key line %q: %v", res.T, err)
	}
	return res.S, res.P, pub
}

// passwordFile writes the test password in a 0600 file.
func passwordFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mqtt.password")
	if err := os.WriteFile(p, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fleetIDs names n devices: "seoul-NNN" for the first half, "tokyo-NNN" after.
func fleetSpecs(n int) []simSpec {
	var out []simSpec
	for i := 0; i < n; i++ {
		g := "seoul"
		if i >= n/2 {
			g = "tokyo"
		}
		out = append(out, simSpec{id: fmt.Sprintf("%s-%03d", g, i), groups: []string{g}})
	}
	return out
}

func specIDs(specs []simSpec) []string {
	var ids []string
	for _, s := range specs {
		ids = append(ids, s.id)
	}
	return ids
}

// groupOf returns the ids of the spec devices in group g.
func groupOf(specs []simSpec, g string) []string {
	var ids []string
	for _, s := range specs {
		if slices.Contains(s.groups, g) {
			ids = append(ids, s.id)
		}
	}
	return ids
}
