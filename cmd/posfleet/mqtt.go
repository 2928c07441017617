package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/internal/secretfile"
	wsync "github.com/walletless/walletless/sync"
)

// connFlags are the broker flags every networked command shares. The TLS names are
// posgw's (-ca, -cert), except the client key, -cert-key, because -key is the
// signing key.
type connFlags struct {
	broker, username, passwordFile *string
	ca, cert, certKey, clientID    *string
	settle                         *time.Duration
}

func addConnFlags(fs *flag.FlagSet) connFlags {
	return connFlags{
		broker:       fs.String("broker", "", "MQTT broker `URL` (tcp://host:1883, ssl://host:8883)"),
		username:     fs.String("username", "posfleet", "MQTT user name (the fleet manager's identity in the broker ACL)"),
		passwordFile: fs.String("password-file", "", "`FILE` holding the MQTT password on its first line (mode 0600)"),
		ca:           fs.String("ca", "", "PEM CA bundle `FILE` for the broker's certificate (needs an ssl:// broker)"),
		cert:         fs.String("cert", "", "client certificate `FILE` for mutual TLS (with -cert-key)"),
		certKey:      fs.String("cert-key", "", "private key `FILE` of -cert (mode 0600)"),
		clientID:     fs.String("client-id", "", "MQTT client id (default posfleet-RANDOM; clean session)"),
		settle:       fs.Duration("settle", 10*time.Second, "longest wait for the broker's retained messages (births, reports, desired documents) after subscribing"),
	}
}

// deviceState is what posfleet knows about one device.
type deviceState struct {
	ID         string
	Status     *wsync.Status // last birth or will (highest session)
	Groups     []string      // from the last birth or heartbeat that listed them
	HB         *heartbeat    // last heartbeat heard in this run
	HBSeen     time.Time     // when it was heard (local clock)
	Report     *report       // last config report (retained)
	ReportSeen time.Time
}

// online reports whether the last status says online.
func (d *deviceState) online() bool { return d.Status != nil && d.Status.State == "online" }

// inGroup reports whether the device lists g.
func (d *deviceState) inGroup(g string) bool {
	for _, x := range d.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// status is a birth or will with the groups the device engineer added.
type status struct {
	wsync.Status
	Groups []string `json:"groups,omitempty"`
}

// heartbeat is a Heartbeat with its groups.
type heartbeat struct {
	wsync.Heartbeat
	Groups []string `json:"groups,omitempty"`
}

// report is a device's config report (retained).
type report struct {
	V       int       `json:"v"`
	Device  string    `json:"device"`
	Version uint64    `json:"version"`
	Code    int       `json:"code"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Report codes of the wire contract.
const (
	codeApplying = 202
	codeApplied  = 200
	codeRejected = 400
	codeFailed   = 500
)

// desiredDoc is a retained desired-config message.
type desiredDoc struct {
	Doc     document
	Payload []byte
}

// watcher keeps the fleet's state from the broker's messages. Paho's goroutines
// write it; commands read it under mu.
type watcher struct {
	mu           stdsync.Mutex
	devices      map[string]*deviceState // guarded by mu
	desired      map[string]desiredDoc   // topic → document; guarded by mu
	lastRetained time.Time               // guarded by mu
	changed      chan struct{}           // a token each time something changes
	subscribed   chan error              // the first subscription's outcome
	now          func() time.Time
}

func newWatcher() *watcher {
	return &watcher{
		devices: map[string]*deviceState{}, desired: map[string]desiredDoc{},
		changed: make(chan struct{}, 1), subscribed: make(chan error, 1), now: time.Now,
	}
}

func (w *watcher) device(id string) *deviceState {
	d := w.devices[id]
	if d == nil {
		d = &deviceState{ID: id}
		w.devices[id] = d
	}
	return d
}

// handle files one message. Malformed messages are ignored: a device's bad
// heartbeat must not stop the manager's tool.
func (w *watcher) handle(topic string, payload []byte, retained bool) {
	if len(payload) > maxEnvelope {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if retained {
		w.lastRetained = w.now()
	}
	defer w.notify()
	if t, ok := targetFromTopic(topic); ok {
		if len(payload) == 0 {
			delete(w.desired, topic)
			return
		}
		d, _, err := parseEnvelope(payload)
		if err != nil || d.Target != t {
			return
		}
		w.desired[topic] = desiredDoc{Doc: d, Payload: payload}
		return
	}
	id, err := wsync.DeviceFromTopic(topic)
	if err != nil {
		return
	}
	switch strings.TrimPrefix(topic, wsync.TopicPrefix+id+"/") {
	case "status":
		var s status
		if json.Unmarshal(payload, &s) != nil || s.Device != id || s.V != wsync.Version {
			return
		}
		d := w.device(id)
		if d.Status != nil && s.Session < d.Status.Session {
			return // an older session's will or birth
		}
		d.Status = &s.Status
		if s.Groups != nil {
			d.Groups = s.Groups
		}
	case "heartbeat":
		var hb heartbeat
		if json.Unmarshal(payload, &hb) != nil || hb.Device != id || hb.V != wsync.Version {
			return
		}
		d := w.device(id)
		d.HB, d.HBSeen = &hb, w.now()
		if hb.Groups != nil {
			d.Groups = hb.Groups
		}
		// A heartbeat proves the device is up even if its birth was missed.
		if d.Status == nil || (d.Status.State != "online" && hb.Session > d.Status.Session) {
			d.Status = &wsync.Status{V: wsync.Version, Device: id, State: "online", Session: hb.Session, At: hb.At}
		}
	case "config/reported":
		var r report
		if json.Unmarshal(payload, &r) != nil || r.Device != id || r.V != 1 {
			return
		}
		d := w.device(id)
		if old := d.Report; old != nil && r.Version == old.Version && r.At.Before(old.At) {
			return // an older report of the same version
		}
		d.Report, d.ReportSeen = &r, w.now()
	}
}

func (w *watcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// snapshot returns copies of the devices, sorted by id.
func (w *watcher) snapshot() []deviceState {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]deviceState, 0, len(w.devices))
	for _, d := range w.devices {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// desiredAt returns the retained document on topic.
func (w *watcher) desiredAt(topic string) (desiredDoc, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.desired[topic]
	return d, ok
}

// highestVersion is the highest config version posfleet can see: in retained
// desired documents, in reports and in heartbeats' config_version.
func (w *watcher) highestVersion() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var max uint64
	for _, d := range w.desired {
		max = maxU(max, d.Doc.Version)
	}
	for _, d := range w.devices {
		if d.Report != nil {
			max = maxU(max, d.Report.Version)
		}
		if d.HB != nil {
			if v, err := strconv.ParseUint(d.HB.ConfigVersion, 10, 64); err == nil {
				max = maxU(max, v)
			}
		}
	}
	return max
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// session is posfleet's connection to the broker.
type session struct {
	client mqtt.Client
	w      *watcher
	stderr io.Writer
}

// dial connects, subscribes to presence, health, reports and desired documents, and
// waits until the broker has delivered its retained messages (no new one for a
// moment, at most -settle).
func (f connFlags) dial(ctx context.Context, stderr io.Writer) (*session, error) {
	if *f.broker == "" {
		return nil, usageErr("-broker URL is required")
	}
	u, err := url.Parse(*f.broker)
	if err != nil || u.Host == "" {
		return nil, usageErr("-broker %q is not a URL like tcp://host:1883 or ssl://host:8883", *f.broker)
	}
	if err := wsync.CheckTLSURL(*f.broker, nil, *f.ca, *f.cert, *f.certKey); err != nil {
		return nil, err
	}
	tc, err := wsync.TLSConfig(nil, *f.ca, *f.cert, *f.certKey)
	if err != nil {
		return nil, err
	}
	var password string
	if *f.passwordFile != "" {
		b, err := secretfile.Read(*f.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("-password-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		password = strings.TrimRight(line, "\r")
	}
	if password != "" && tc == nil && !loopback(u.Hostname()) {
		fmt.Fprintf(stderr, "posfleet: warning: the MQTT password crosses the network in clear text to %s (use ssl:// and -ca)\n", u.Host)
	}
	id := *f.clientID
	if id == "" {
		var b [6]byte
		rand.Read(b[:])
		id = "posfleet-" + hex.EncodeToString(b[:])
	}
	w := newWatcher()
	s := &session{w: w, stderr: stderr}
	filters := map[string]byte{
		wsync.TopicPrefix + "+/status":    1,
		wsync.TopicPrefix + "+/heartbeat": 1,
		reportedFilter:                    1,
		desiredFilter:                     1,
	}
	opts := mqtt.NewClientOptions().AddBroker(*f.broker).SetClientID(id).SetCleanSession(true).
		SetUsername(*f.username).SetPassword(password).SetConnectTimeout(10 * time.Second).
		SetConnectRetry(false).SetAutoReconnect(true).SetMaxReconnectInterval(10 * time.Second).
		SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		w.handle(m.Topic(), m.Payload(), m.Retained())
	})
	first := true
	var firstMu stdsync.Mutex
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		tok := c.SubscribeMultiple(filters, nil)
		tok.Wait()
		err := tok.Error()
		if err == nil {
			if st, ok := tok.(*mqtt.SubscribeToken); ok {
				for topic, q := range st.Result() {
					if q == 0x80 {
						err = fmt.Errorf("the broker refused the subscription to %s (ACL: posfleet needs read on walletless/v1/devices/+/… and readwrite on walletless/v1/fleet/#)", topic)
					}
				}
			}
		}
		firstMu.Lock()
		defer firstMu.Unlock()
		if first {
			first = false
			w.subscribed <- err
		} else if err != nil {
			fmt.Fprintf(stderr, "posfleet: after reconnecting: %v\n", err)
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		fmt.Fprintf(stderr, "posfleet: lost the broker (%v); reconnecting\n", err)
	})
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		if tok.Error() != nil {
			return nil, fmt.Errorf("connect to %s: %w", *f.broker, tok.Error())
		}
		return nil, fmt.Errorf("connect to %s: timed out", *f.broker)
	}
	s.client = c
	select {
	case err := <-w.subscribed:
		if err != nil {
			s.close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	case <-ctx.Done():
		s.close()
		return nil, ctx.Err()
	case <-time.After(15 * time.Second):
		s.close()
		return nil, errors.New("subscribe: no answer from the broker")
	}
	// Retained messages follow the SUBACK; wait until they stop coming.
	start := w.now()
	const quiet = 300 * time.Millisecond
	for {
		w.mu.Lock()
		last := w.lastRetained
		w.mu.Unlock()
		now := w.now()
		if last.Before(start) {
			last = start
		}
		if now.Sub(last) >= quiet || now.Sub(start) >= *f.settle {
			break
		}
		select {
		case <-ctx.Done():
			s.close()
			return nil, ctx.Err()
		case <-time.After(quiet / 3):
		}
	}
	return s, nil
}

func (s *session) close() { s.client.Disconnect(250) }

// publish sends a retained message at QoS 1 and waits until the broker has it and
// hands it back on posfleet's own subscription: mosquitto acknowledges a publish
// that its ACL drops, so the echo is the proof it was taken.
func (s *session) publish(ctx context.Context, topic string, payload []byte) error {
	tok := s.client.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(30 * time.Second) {
		return fmt.Errorf("publish %s: no acknowledgement from the broker in 30s", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		d, ok := s.w.desiredAt(topic)
		if len(payload) == 0 && !ok || ok && string(d.Payload) == string(payload) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("publish %s: the broker acknowledged but never delivered it back; check the ACL (the posfleet user needs readwrite on walletless/v1/fleet/#)", topic)
		case <-s.w.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loopback reports whether host is localhost or a loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	return strings.HasPrefix(host, "127.") || host == "::1"
}
