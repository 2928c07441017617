package sync

import (
	"encoding/json"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// heartbeat publishes one Heartbeat. Its PUBACK is not awaited on the loop: a lost
// heartbeat is replaced by the next one.
func (l *Link) heartbeat(c mqtt.Client) {
	hb := l.HeartbeatNow(time.Now())
	b, err := json.Marshal(hb)
	if err != nil {
		return
	}
	c.Publish(HeartbeatTopic(l.cfg.DeviceID), 1, false, b)
}

// HeartbeatNow builds the heartbeat the link would send at now.
func (l *Link) HeartbeatNow(now time.Time) Heartbeat {
	hb := Heartbeat{V: Version, Device: l.cfg.DeviceID, Session: l.cfg.Session, At: now.UTC(), QueueDepth: -1, InFlight: l.InFlight(), Firmware: l.cfg.Version, Groups: l.cfg.Groups}
	if d, ok := l.cfg.Outbox.(Depther); ok {
		if n, err := d.Depth(); err == nil {
			hb.QueueDepth = n
		}
	}
	if head, err := l.cfg.Outbox.Pending(1, nil); err == nil && len(head) == 1 {
		if t, ok := createdAt(head[0].Data); ok && now.After(t) {
			hb.OldestUnsyncedMS = now.Sub(t).Milliseconds()
		}
	}
	if l.cfg.Health != nil {
		h := l.cfg.Health()
		if h.Firmware != "" {
			hb.Firmware = h.Firmware
		}
		hb.ConfigVersion, hb.Scanner, hb.Printer = h.ConfigVersion, h.Scanner, h.Printer
	}
	return hb
}

// createdAt reads the created_at field of an outbox entry's payload.
func createdAt(data []byte) (time.Time, bool) {
	var m OutboxMessage
	if json.Unmarshal(data, &m) != nil {
		return time.Time{}, false
	}
	var p struct {
		CreatedAt time.Time `json:"created_at"`
		AskedAt   time.Time `json:"asked_at"`
		ClosedAt  time.Time `json:"closed_at"`
	}
	if json.Unmarshal(m.Payload, &p) != nil {
		return time.Time{}, false
	}
	for _, t := range []time.Time{p.CreatedAt, p.AskedAt, p.ClosedAt} {
		if !t.IsZero() {
			return t, true
		}
	}
	return time.Time{}, false
}
