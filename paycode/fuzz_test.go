package paycode

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Seeds common to the fuzz targets; more live in testdata/fuzz/<target>/.
func mpmSeeds(f *testing.F) {
	for _, s := range []string{specSample, jpqrSample, qrisSample, jpqrBadCRC, "000201", "00020163", "0002016304FFFF"} {
		f.Add(s)
	}
	for _, m := range []MPM{promptPayTransfer, pixStatic, sgqr, duitNow, vietQR, jpqrDynamic} {
		s, err := Build(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
}

// FuzzDecode checks that Decode never panics and that every code it accepts
// round-trips: Build(Decode(s)) == s (CRC case aside) and Decode(Build(m)) == m.
func FuzzDecode(f *testing.F) {
	mpmSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		m, _, err := Decode(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "paycode: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		b, err := Build(m)
		if err != nil {
			t.Fatalf("Build(Decode(s)) failed: %v", err)
		}
		if b[:len(b)-4] != s[:len(s)-4] || !strings.EqualFold(b[len(b)-4:], s[len(s)-4:]) {
			t.Fatalf("Build(Decode(s)) = %q, want %q", b, s)
		}
		m2, _, err := Decode(b)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("Decode(Build(m)) = %+v, %v; want %+v", m2, err, m)
		}
	})
}

// FuzzBuild checks that Build never panics and that what it builds decodes back to m.
func FuzzBuild(f *testing.F) {
	f.Add("26", "br.gov.bcb.pix", "01", "key", "986", "10.50", "Fulano", "62", "05", "***")
	f.Add("29", "A000000677010111", "01", "0066812345678", "764", "", "", "64", "00", "TH")
	f.Add("15", "", "", "1234567890123456789", "392", "100", "店", "62", "01", "請求書")
	f.Fuzz(func(t *testing.T, accID, gui, subID, subVal, cur, amount, name, tmplID, tmplSub, tmplVal string) {
		a := MerchantAccount{ID: accID}
		if gui != "" || subID != "" {
			a.GUI = gui
			if subID != "" {
				a.Fields = []Field{{subID, subVal}}
			}
		} else {
			a.Value = subVal
		}
		m := MPM{PayloadFormat: "01", MerchantAccounts: []MerchantAccount{a}, Currency: cur, Amount: amount, MerchantName: name}
		switch tmplID {
		case "62":
			m.Additional = []Field{{tmplSub, tmplVal}}
		case "64":
			m.Language = []Field{{tmplSub, tmplVal}}
		}
		s, err := Build(m)
		if err != nil {
			return
		}
		got, _, err := Decode(s)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("Decode(Build(m)) = %+v, %v; want %+v", got, err, m)
		}
	})
}

// FuzzDecodeCPM checks that the consumer-presented decoder never panics and that
// what it accepts is masked.
func FuzzDecodeCPM(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(cpmSample()))
	f.Add(base64.StdEncoding.EncodeToString(cpmSample()[:20]))
	f.Add("hQVDUFYwMQ==")
	f.Fuzz(func(t *testing.T, s string) {
		c, _, err := DecodeCPM(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "paycode: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if len(c.Applications) == 0 {
			t.Fatal("accepted without applications")
		}
		for _, a := range c.Applications {
			if a.MaskedPAN != "" && !strings.HasPrefix(a.MaskedPAN, "…") {
				t.Fatalf("unmasked PAN %q", a.MaskedPAN)
			}
		}
	})
}

// FuzzIdentify checks Identify on anything a scanner could send: no panic, a Kind only
// without error, and errors that never quote the code.
func FuzzIdentify(f *testing.F) {
	mpmSeeds(f)
	for _, s := range []string{"281234567890123456", "134567890123456789", "6212345678901234567", "12", "",
		base64.StdEncoding.EncodeToString(cpmSample()), "https://example.com/pay"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Identify(s)
		if err != nil {
			if r.Kind != "" || r.Scheme != "" {
				t.Fatalf("error %v with kind %q", err, r.Kind)
			}
			if len(s) >= 12 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes the code: %v", err)
			}
			return
		}
		if r.Kind == "" || r.Masked == "" {
			t.Fatalf("result without kind or mask: %+v", r)
		}
	})
}

// FuzzParseRules checks that rule tables never panic the parser and re-encode exactly.
func FuzzParseRules(f *testing.F) {
	b, _ := json.Marshal(DefaultRules())
	f.Add(b)
	f.Add([]byte(`{"version":"1","wallets":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRules(b)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseAmount checks that accepted amounts format back to the same minor units.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"23.72", "0", "498", "1.234", "92233720368547758.07", "1e3", "-1"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, exp int) {
		if exp < 0 || exp > 4 {
			return
		}
		c := Currency{Code: "TST", Numeric: "000", Exponent: exp}
		v, err := ParseAmount(s, c)
		if err != nil {
			return
		}
		back, err := ParseAmount(FormatAmount(v, c), c)
		if err != nil || back != v {
			t.Fatalf("ParseAmount(FormatAmount(%d)) = %d, %v", v, back, err)
		}
	})
}
