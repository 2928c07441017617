package config

import (
	"strings"
	"testing"
)

func TestFleetSection(t *testing.T) {
	const key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
	c, err := Parse(strings.NewReader(`{"version":1,"fleet":{"trusted_keys":["` + key + `"],"groups":["korea","seoul"]},"payment":{"rules":{"v":1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Fleet.VerifyTimeout != Duration(60e9) || len(c.Fleet.Groups) != 2 {
		t.Fatalf("%+v", c.Fleet)
	}
	for name, doc := range map[string]string{
		"bad key":        `{"version":1,"fleet":{"trusted_keys":["RWQnope"]}}`,
		"minisign sig":   `{"version":1,"fleet":{"trusted_keys":["untrusted comment: x"]}}`,
		"group wildcard": `{"version":1,"fleet":{"groups":["a/#"]}}`,
		"group twice":    `{"version":1,"fleet":{"groups":["a","a"]}}`,
		"timeout":        `{"version":1,"fleet":{"verify_timeout":"10ms"}}`,
		"unknown":        `{"version":1,"fleet":{"history":3}}`,
		"rules twice":    `{"version":1,"payment":{"rules_file":"/x","rules":{}}}`,
	} {
		if _, err := Parse(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
