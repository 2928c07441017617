package config

import (
	"strings"
	"testing"
)

func TestPageSection(t *testing.T) {
	c, err := Parse(strings.NewReader(`{"version":1,"page":{"language":"ja","currencies":["JPY","USD"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.PageLanguage() != "ja" || strings.Join(c.PageCurrencies(), ",") != "JPY,USD" {
		t.Fatalf("%+v", c.Page)
	}
	if d := Default(); d.PageLanguage() != d.Printer.Language || d.PageCurrencies()[0] != "KRW" {
		t.Fatalf("defaults: %q %v", d.PageLanguage(), d.PageCurrencies())
	}
	for in, want := range map[string]string{
		`{"version":1,"page":{"language":"fr"}}`:                "page.language",
		`{"version":1,"page":{"currencies":["won"]}}`:           "page.currencies[0]",
		`{"version":1,"page":{"currencies":["KRW","KRW"]}}`:     "listed twice",
		`{"version":1,"page":{"currencies":"KRW"}}`:             "currencies",
		`{"version":1,"page":{"language":"en","colour":"red"}}`: "colour",
		`{"version":1,"page":{"session_ttl":"10ms"}}`:           "page.session_ttl",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", in, err, want)
		}
	}
}
