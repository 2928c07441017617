package config

import (
	"strings"
	"testing"
)

func TestFirmwareSection(t *testing.T) {
	good := `{"version":1,"fleet":{"trusted_keys":["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"]},"firmware":{"slots_dir":"/var/lib/walletless/slots","backend":"files","board":"rpi4","max_wait":"5m"}}`
	c, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Firmware.MaxAttempts != 3 || c.Firmware.Board != "rpi4" {
		t.Errorf("%+v", c.Firmware)
	}
	for _, bad := range []string{
		`{"version":1,"firmware":{"backend":"uboot"}}`,
		`{"version":1,"firmware":{"slots_dir":"relative/slots"}}`,
		`{"version":1,"firmware":{"slots_dir":"/s","backend":"tryboot"}}`,
		`{"version":1,"firmware":{"max_wait":"0s"}}`,
		`{"version":1,"firmware":{"board":"a b"}}`,
		`{"version":1,"firmware":{"trusted_keys":["nope"]}}`,
		`{"version":1,"firmware":{"slotsdir":"/x"}}`,
	} {
		if _, err := Parse(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "firmware") && !strings.Contains(err.Error(), "unknown") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	// Slots without a trusted key: valid (the packaged configuration); artifacts are
	// refused until a key is trusted.
	if _, err := Parse(strings.NewReader(`{"version":1,"firmware":{"slots_dir":"/x"}}`)); err != nil {
		t.Errorf("slots_dir without a key: %v", err)
	}
}
