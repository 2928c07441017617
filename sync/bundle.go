package sync

import (
	"encoding/json"
	"errors"
	"fmt"
)

// MaxBundleItems bounds the messages in one Bundle.
const MaxBundleItems = 128

// DefaultBundle is how many outbox entries the link puts into one Bundle unless
// configured otherwise.
const DefaultBundle = 32

// BundleTopic carries a Bundle: several device → cloud messages in one MQTT publish.
// A lone message still goes to its own kind's topic (UpTopic), so a cloud that does
// not subscribe here sees every message that was not bundled; a device whose cloud
// does not implement bundles sets its bundle size to 1.
func BundleTopic(device string) string { return TopicPrefix + device + "/" + bundleTopic }

const bundleTopic = "bundle"

// Bundle is several outbox messages of one device in one publish, so a device draining
// a backlog pays one MQTT round trip (and one broker routing decision) for a group of
// requests instead of one each. Each item is exactly the payload that would have gone
// to its kind's topic; the cloud handles every item as if it had arrived alone, in
// order, and answers them on ResultTopic as usual (singly or in a ResultBatch).
type Bundle struct {
	V      int          `json:"v"`
	Device string       `json:"device"`
	Items  []BundleItem `json:"items"`
}

// BundleItem is one message of a Bundle: its kind (KindPayment, KindQuery, …) and its
// payload.
type BundleItem struct {
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
}

func (p *Bundle) version() int { return p.V }

// UpMessage is one decoded device → cloud message, from its own topic or a Bundle.
type UpMessage struct {
	Kind   string
	Key    string
	Device string // as claimed by the payload
	Msg    any    // *PaymentRequest, *QueryRequest, …
}

// DecodeBundle parses a message on BundleTopic. It returns the valid items in order
// and one error per invalid item (a malformed item does not spoil its valid
// neighbours: the device resends it and it is logged); a malformed bundle gives no
// items and its error. Every item must claim the bundle's device.
func DecodeBundle(payload []byte) (device string, msgs []UpMessage, errs []error) {
	var b Bundle
	if err := Decode(payload, &b); err != nil {
		return "", nil, []error{err}
	}
	if !ValidDeviceID(b.Device) {
		return "", nil, []error{fmt.Errorf("%w: bundle device %q", ErrMalformed, b.Device)}
	}
	if len(b.Items) == 0 || len(b.Items) > MaxBundleItems {
		return "", nil, []error{fmt.Errorf("%w: %d items in one bundle (1 to %d)", ErrMalformed, len(b.Items), MaxBundleItems)}
	}
	msgs = make([]UpMessage, 0, len(b.Items))
	for i, it := range b.Items {
		msg, key, dev, err := DecodeUp(it.Kind, it.Payload)
		if err == nil && dev != b.Device {
			err = fmt.Errorf("%w: item claims device %q in a bundle of %q", ErrMalformed, dev, b.Device)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bundle item %d: %w", i, err))
			continue
		}
		msgs = append(msgs, UpMessage{Kind: it.Kind, Key: key, Device: dev, Msg: msg})
	}
	return b.Device, msgs, errs
}

// ErrBundle is returned by EncodeBundle for items that cannot form a bundle.
var ErrBundle = errors.New("sync: cannot bundle")

// EncodeBundle builds the payload of a Bundle. Items must be non-empty, at most
// MaxBundleItems, and the result must fit MaxPayload.
func EncodeBundle(device string, items []BundleItem) ([]byte, error) {
	if len(items) == 0 || len(items) > MaxBundleItems {
		return nil, fmt.Errorf("%w: %d items", ErrBundle, len(items))
	}
	raw, err := json.Marshal(Bundle{V: Version, Device: device, Items: items})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	if len(raw) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrBundle, len(raw))
	}
	return raw, nil
}

// bundleOverhead is a generous bound of a Bundle's bytes besides its payloads: the
// envelope plus the per-item kind wrapper.
func bundleOverhead(items int) int { return 128 + 48*items }
