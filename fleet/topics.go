package fleet

import (
	"fmt"
	"strings"
)

// TopicPrefix is the versioned prefix of every topic.
const TopicPrefix = "walletless/v1/"

// ConfigPrefix is the prefix of the desired-config slot topics; only the fleet
// manager may publish under it.
const ConfigPrefix = TopicPrefix + "fleet/config/"

// ConfigFilter matches every slot topic (what a fleet manager watches).
const ConfigFilter = ConfigPrefix + "#"

// ReportFilter matches every device's reported-config topic.
const ReportFilter = TopicPrefix + "devices/+/config/reported"

// Slot kinds.
const (
	SlotAll    = "all"
	SlotGroup  = "group"
	SlotDevice = "device"
)

// Slot is one place a document can be held: all, a group or a device.
type Slot struct {
	Kind string // SlotAll, SlotGroup or SlotDevice
	Name string // the group or device; empty for SlotAll
}

// String is "all", "group G" or "device D".
func (s Slot) String() string {
	if s.Kind == SlotAll {
		return SlotAll
	}
	return s.Kind + " " + s.Name
}

// Topic is the slot's retained topic.
func (s Slot) Topic() string {
	switch s.Kind {
	case SlotAll:
		return AllTopic()
	case SlotGroup:
		return GroupTopic(s.Name)
	default:
		return DeviceTopic(s.Name)
	}
}

// AllTopic is the slot every device reads.
func AllTopic() string { return ConfigPrefix + "all" }

// GroupTopic is the slot of group g.
func GroupTopic(g string) string { return ConfigPrefix + "groups/" + g }

// DeviceTopic is the slot of device d.
func DeviceTopic(d string) string { return ConfigPrefix + "devices/" + d }

// ReportTopic is where device d reports what became of the documents it received.
func ReportTopic(d string) string { return TopicPrefix + "devices/" + d + "/config/reported" }

// ParseTopic returns the slot a topic names.
func ParseTopic(topic string) (Slot, error) {
	rest, ok := strings.CutPrefix(topic, ConfigPrefix)
	if !ok {
		return Slot{}, fmt.Errorf("fleet: %q is not a config slot topic", topic)
	}
	if rest == "all" {
		return Slot{Kind: SlotAll}, nil
	}
	if g, ok := strings.CutPrefix(rest, "groups/"); ok && ValidName(g) {
		return Slot{Kind: SlotGroup, Name: g}, nil
	}
	if d, ok := strings.CutPrefix(rest, "devices/"); ok && ValidName(d) {
		return Slot{Kind: SlotDevice, Name: d}, nil
	}
	return Slot{}, fmt.Errorf("fleet: %q is not a config slot topic", topic)
}

// DeviceFromReportTopic returns the device a report topic names.
func DeviceFromReportTopic(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, TopicPrefix+"devices/")
	if ok {
		if d, ok := strings.CutSuffix(rest, "/config/reported"); ok && ValidName(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("fleet: %q is not a report topic", topic)
}

// Filters are the slot topics device with groups subscribes to: all, each group,
// its own.
func Filters(device string, groups []string) []string {
	f := []string{AllTopic()}
	for _, g := range groups {
		f = append(f, GroupTopic(g))
	}
	return append(f, DeviceTopic(device))
}
