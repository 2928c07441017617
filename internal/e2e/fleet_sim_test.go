package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/fleet"
	wsync "github.com/walletless/walletless/sync"
)

// The fleet simulator: many device links in one process. Each is posd's fleet.Agent
// (the device's own verification, version and merge rules, and reports) with an
// in-memory apply, on its own MQTT connection with a retained birth and will and
// heartbeats carrying groups and config_version. posfleet is run against it as a
// built binary.

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

	agent   *fleet.Agent
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	current uint64          // version in force; guarded by mu
	got     map[uint64]bool // every version a document carried to this device; guarded by mu
	config  map[string]any  // effective config in force; guarded by mu
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
			got: map[uint64]bool{}, config: map[string]any{}, stop: make(chan struct{}), done: make(chan struct{})}
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
	base := fmt.Sprintf(`{"version":1,"device_id":%q}`, d.id)
	a, err := fleet.NewAgent(fleet.AgentConfig{Device: d.id, Groups: d.groups, Keys: []minisign.PublicKey{d.trust}, Base: []byte(base),
		Validate: d.validate, Apply: d.apply,
		Publish: func(topic string, payload []byte) error {
			tok := d.client.Publish(topic, 1, true, payload)
			if !tok.WaitTimeout(10 * time.Second) {
				return errors.New("no PUBACK")
			}
			return tok.Error()
		}})
	if err != nil {
		return err
	}
	d.agent = a
	d.ctx, d.cancel = context.WithCancel(context.Background())
	go a.Run(d.ctx)
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
	filters := map[string]byte{}
	for _, f := range a.Filters() {
		filters[f] = 1
	}
	if tok := c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	a.Connected()
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
			"oldest_unsynced_ms": 0, "firmware": "1.4.2", "config_version": fmt.Sprint(d.current), "scanner": "ok", "printer": "usb", "groups": d.groups}
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
	if d.cancel != nil {
		defer d.cancel()
	}
	if d.client != nil && d.client.IsConnected() {
		d.client.Publish(wsync.StatusTopic(d.id), 1, true, d.status("offline")).WaitTimeout(5 * time.Second)
		d.client.Disconnect(100)
	}
}

// onDoc hands a message of one of the device's slots to its fleet.Agent, noting the
// version it carries (to check later that a document never reached a device).
func (d *simDevice) onDoc(topic string, payload []byte) {
	if env, err := fleet.ParseEnvelope(payload); err == nil {
		if doc, err := fleet.ParseDocument(env.Document); err == nil {
			d.mu.Lock()
			d.got[uint64(doc.Version)] = true
			d.mu.Unlock()
		}
	}
	d.agent.Handle(d.ctx, topic, payload)
}

// validate is posd's startup parser and validation (package config) on the
// effective configuration; a device with reject set fails it as well.
func (d *simDevice) validate(effective []byte) error {
	if d.reject != "" {
		return errors.New(d.reject)
	}
	_, err := config.Parse(bytes.NewReader(effective))
	return err
}

// apply puts a configuration in force in memory; a device with fail set reports
// that it went back to the previous one.
func (d *simDevice) apply(_ context.Context, c fleet.Change) error {
	if d.fail != "" {
		return errors.New(d.fail)
	}
	var eff map[string]any
	if err := json.Unmarshal(c.Effective, &eff); err != nil {
		return err
	}
	d.mu.Lock()
	d.current, d.config = uint64(c.Version), eff
	d.mu.Unlock()
	return nil
}

// holds reports whether the device's agent holds a document on its own device slot.
func (d *simDevice) holdsDeviceDoc() bool {
	_, ok := d.agent.State().Slots["devices/"+d.id]
	return ok
}

// state returns the device's current version, effective config (as JSON, without
// the base's version and device_id) and
// whether a document of version v ever reached it.
func (d *simDevice) state(v uint64) (current uint64, config string, got bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := map[string]any{}
	for k, v := range d.config {
		if k != "version" && k != "device_id" {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
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
