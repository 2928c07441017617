package paycode

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// Public samples. Each is cited in testdata/README.md.
const (
	// EMVCo QRCPS MPM v1.1, Appendix A example: Chinese in template 64, CRC A13A.
	specSample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
	// JPQR sample from go.mercari.io/go-emv-code (mpm/jpqr tests), CRC DEE9.
	jpqrSample = "0002016003xxx01021129300012D156000000000510A93FO3230Q31280012D1560000000103081234567826680019jp.or.paymentsjapan01130000000000001020400010306000001040600000153033925903xxx64180002JA0108メルペイ カフェ520441115802JP610710661436304DEE9"
	// Public QRIS static payload (Indonesia) seen in an open-source POS, CRC 285A.
	qrisSample = "00020101021126570011ID.DANA.WWW011893600915303471271802090347127180303UMI51440014ID.CO.QRIS.WWW0215ID10265837741240303UMI5204739453033605802ID5916Semilir Semarang6013Kota Semarang6105501166304285A"
	// A JPQR test vector from a public reader app whose CRC is wrong (its decoder does
	// not check CRCs; neither UTF-8, Shift_JIS nor UTF-16 gives 6D60).
	jpqrBadCRC = "00020164210002JA0111JPQRMPM本舗食堂53033925903xxx6003xxx610710600325802JP01021126680019jp.or.paymentsjapan0113000000000000102040001030600000104060000015204412163046D60"
)

// mustBuild builds m or fails the test.
func mustBuild(t testing.TB, m MPM) string {
	t.Helper()
	s, err := Build(m)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

// withCRC appends "6304" and the right CRC to a payload without one.
func withCRC(payload string) string {
	p := payload + "6304"
	return p + crcHex(CRC16(p))
}

// National-scheme codes, constructed with Build so their CRCs are computed, not invented.
var (
	promptPayTransfer = MPM{ // Thai QR credit transfer to a mobile number: no 52/59/60.
		PayloadFormat: "01", PointOfInitiation: PointDynamic,
		MerchantAccounts: []MerchantAccount{{ID: "29", GUI: "A000000677010111", Fields: []Field{{"01", "0066812345678"}}}},
		Currency:         "764", Amount: "150.00", Country: "TH",
	}
	pixStatic = MPM{ // BR Code, static Pix with a random key.
		PayloadFormat: "01",
		MerchantAccounts: []MerchantAccount{{ID: "26", GUI: "br.gov.bcb.pix",
			Fields: []Field{{"01", "123e4567-e12b-12d1-a456-426655440000"}}}},
		MCC: "0000", Currency: "986", Country: "BR", MerchantName: "Fulano de Tal", MerchantCity: "BRASILIA",
		Additional: []Field{{AddReferenceLabel, "***"}},
	}
	sgqr = MPM{ // SGQR with PayNow (UEN) and the SGQR id template in 51.
		PayloadFormat: "01", PointOfInitiation: PointStatic,
		MerchantAccounts: []MerchantAccount{
			{ID: "26", GUI: "SG.PAYNOW", Fields: []Field{{"01", "2"}, {"02", "201234567M"}, {"03", "1"}}},
			{ID: "51", GUI: "SG.SGQR", Fields: []Field{{"01", "180905ABCDEF"}, {"02", "01.0001"}, {"03", "640897"}}},
		},
		MCC: "5812", Currency: "702", Country: "SG", MerchantName: "KOPI TIAM", MerchantCity: "Singapore",
	}
	duitNow = MPM{ // DuitNow QR with payload format 02, as seen in the wild.
		PayloadFormat: "02", PointOfInitiation: PointStatic,
		MerchantAccounts: []MerchantAccount{{ID: "26", GUI: "A0000006150001", Fields: []Field{{"01", "890087"}, {"02", "0000000000000000000000091507"}}}},
		MCC:              "7372", Currency: "458", Country: "MY", MerchantName: "KEDAI RUNCIT", MerchantCity: "KUALA LUMPUR",
	}
	vietQR = MPM{ // VietQR account transfer: no 52/59/60.
		PayloadFormat: "01", PointOfInitiation: PointDynamic,
		MerchantAccounts: []MerchantAccount{{ID: "38", GUI: "A000000727",
			Fields: []Field{{"01", "0006970436011101234567890"}, {"02", "QRIBFTTA"}}}},
		Currency: "704", Amount: "50000", Country: "VN",
		Additional: []Field{{AddPurpose, "thanh toan"}},
	}
	jpqrDynamic = MPM{ // A dynamic JPQR for ¥498 with a Japanese name.
		PayloadFormat: "01", PointOfInitiation: PointDynamic,
		MerchantAccounts: []MerchantAccount{{ID: "26", GUI: "jp.or.paymentsjapan",
			Fields: []Field{{"01", "0000000000001"}, {"02", "0001"}, {"03", "000001"}, {"04", "000001"}}}},
		MCC: "5812", Currency: "392", Amount: "498", Country: "JP", MerchantName: "xxx", MerchantCity: "xxx",
		PostalCode: "5300005", Language: []Field{{"00", "JA"}, {"01", "本舗食堂"}},
	}
)

func TestDecodePublicSamples(t *testing.T) {
	tests := []struct {
		name, code, scheme string
		wantWarn           []string
		check              func(t *testing.T, m MPM)
	}{
		{"emvco spec", specSample, "emvco", []string{"top-level ids are not in ascending order"}, func(t *testing.T, m MPM) {
			if m.Amount != "23.72" || m.Currency != "156" || m.MerchantName != "BEST TRANSPORT" {
				t.Errorf("fields: %+v", m)
			}
			if v, _ := m.LanguageField("01"); v != "最佳运输" {
				t.Errorf("language name = %q", v)
			}
			if v, _ := m.AdditionalField(AddConsumerDataRequest); v != "ME" {
				t.Errorf("62/09 = %q", v)
			}
			if minor, ok := m.AmountMinor(); !ok || minor != 2372 {
				t.Errorf("AmountMinor = %d, %v", minor, ok)
			}
			if len(m.MerchantAccounts) != 2 || m.MerchantAccounts[0].GUI != "D15600000000" {
				t.Errorf("accounts: %+v", m.MerchantAccounts)
			}
			if len(m.Other) != 1 || m.Other[0].ID != "91" {
				t.Errorf("other: %+v", m.Other)
			}
		}},
		{"jpqr mercari", jpqrSample, "jpqr", []string{"top-level ids are not in ascending order"}, func(t *testing.T, m MPM) {
			if v, _ := m.LanguageField("01"); v != "メルペイ カフェ" {
				t.Errorf("language name = %q", v)
			}
		}},
		{"qris", qrisSample, "qris", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, warn, err := Decode(tt.code)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(warn, tt.wantWarn) {
				t.Errorf("warnings = %q, want %q", warn, tt.wantWarn)
			}
			r, err := Identify(tt.code)
			if err != nil || r.Kind != KindEMVMPM || r.Scheme != tt.scheme {
				t.Errorf("Identify = %+v, %v; want scheme %s", r, err, tt.scheme)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
			if got, err := Build(m); err != nil || got != tt.code {
				t.Errorf("Build(Decode(s)) = %q, %v", got, err)
			}
		})
	}
}

func TestNationalSchemes(t *testing.T) {
	tests := []struct {
		name     string
		m        MPM
		scheme   string
		wantWarn []string
		minor    int64
	}{
		{"promptpay transfer", promptPayTransfer, "promptpay", []string{
			"merchant category code (id 52) is missing", "merchant name (id 59) is missing", "merchant city (id 60) is missing"}, 15000},
		{"pix static", pixStatic, "pix", nil, -1},
		{"sgqr paynow", sgqr, "sgqr", nil, -1},
		{"duitnow 02", duitNow, "duitnow", []string{"payload format indicator is 02, not 01 (seen in DuitNow codes)"}, -1},
		{"vietqr transfer", vietQR, "vietqr", []string{
			"merchant category code (id 52) is missing", "merchant name (id 59) is missing", "merchant city (id 60) is missing"}, 50000},
		{"jpqr dynamic", jpqrDynamic, "jpqr", nil, 498},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := mustBuild(t, tt.m)
			r, err := Identify(code)
			if err != nil {
				t.Fatalf("Identify: %v", err)
			}
			if r.Kind != KindEMVMPM || r.Scheme != tt.scheme {
				t.Errorf("kind/scheme = %s/%s, want emv_mpm/%s", r.Kind, r.Scheme, tt.scheme)
			}
			if !reflect.DeepEqual(r.Warnings, tt.wantWarn) {
				t.Errorf("warnings = %q, want %q", r.Warnings, tt.wantWarn)
			}
			if !reflect.DeepEqual(*r.MPM, tt.m) {
				t.Errorf("Decode(Build(x)) = %+v, want %+v", *r.MPM, tt.m)
			}
			minor, ok := r.MPM.AmountMinor()
			if tt.minor >= 0 && (!ok || minor != tt.minor) {
				t.Errorf("AmountMinor = %d, %v; want %d", minor, ok, tt.minor)
			}
			if tt.minor < 0 && ok {
				t.Errorf("AmountMinor = %d on a code without amount", minor)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := mustBuild(t, jpqrDynamic)
	body := good[:len(good)-8] // without "6304XXXX"
	tests := []struct {
		name string
		code string
		want error
		text string
	}{
		{"bad crc", good[:len(good)-4] + "0000", ErrChecksum, "CRC is 0000"},
		{"wrong crc sample", jpqrBadCRC, ErrChecksum, "damaged or altered"},
		{"truncated", good[:len(good)-10], ErrMalformed, ""},
		{"no crc", body, ErrMalformed, "CRC (id 63) is missing"},
		{"data after crc", good + "0000", ErrMalformed, "data after the CRC"},
		{"crc not last", withCRC(body)[:len(body)] + "63041234" + "5802JP", ErrMalformed, "data after the CRC"},
		{"length overrun", withCRC("000201010212269926"), ErrMalformed, "runs past the end"},
		{"length not numeric", withCRC("00020101AB12"), ErrMalformed, "length is not two digits"},
		{"id not numeric", withCRC("000201X10212"), ErrMalformed, "id is not two digits"},
		{"duplicate id", withCRC(body + "5303392"), ErrMalformed, "duplicate id 53"},
		{"00 not first", withCRC("010212000201" + body[12:]), ErrMalformed, "must come first"},
		{"bad payload format", withCRC("000203" + body[6:]), ErrMalformed, "must be 01"},
		{"crc not hex", body + "6304ZZZZ", ErrMalformed, "not 4 hex digits"},
		{"crc short", body + "6303ABC", ErrMalformed, "must be 4 hex digits"},
		{"bad currency shape", withCRC(strings.Replace(body, "5303392", "5303J9Y", 1)), ErrCurrency, "three-digit"},
		{"unknown currency", withCRC(strings.Replace(body, "5303392", "5303999", 1)), ErrCurrency, "not an ISO 4217"},
		{"yen with cents", withCRC(strings.Replace(body, "5403498", "5406498.50", 1)), ErrAmount, "2 decimal places where the currency has 0"},
		{"amount not decimal", withCRC(strings.Replace(body, "5403498", "54034,8", 1)), ErrAmount, "must be digits"},
		{"negative amount", withCRC(strings.Replace(body, "5403498", "5404-498", 1)), ErrAmount, "must be digits"},
		{"amount too long", withCRC(strings.Replace(body, "5403498", "54141234567890.123", 1)), ErrAmount, "longer than 13"},
		{"no currency", withCRC(strings.Replace(body, "5303392", "", 1)), ErrMalformed, "currency (id 53) is missing"},
		{"no merchant account", withCRC("000201010212" + body[strings.Index(body, "5204"):]), ErrMalformed, "no merchant account"},
		{"template overrun", withCRC(strings.Replace(body, "0019jp.or", "0029jp.or", 1)), ErrMalformed, "template 26"},
		{"empty value", withCRC(strings.Replace(body, "5903xxx", "5900", 1)), ErrMalformed, "length 00"},
		{"invalid utf8", withCRC(body + "5902\xff\xfe"), ErrMalformed, "UTF-8"},
		{"bad point of initiation", withCRC(strings.Replace(body, "010212", "010213", 1)), ErrMalformed, "11 or 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.code)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) || !strings.HasPrefix(err.Error(), "paycode: ") {
				t.Errorf("err = %q, want it to contain %q", err, tt.text)
			}
			r, err2 := Identify(tt.code)
			if tt.name == "00 not first" {
				return // not recognisable as merchant-presented at all
			}
			if err2 == nil || r.Kind != "" || r.Detected != KindEMVMPM {
				t.Errorf("Identify = %+v, %v", r, err2)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	good := mustBuild(t, jpqrDynamic)
	lower := good[:len(good)-4] + strings.ToLower(good[len(good)-4:])
	if lower == good {
		t.Skip("CRC has no letters")
	}
	m, warn, err := Decode(lower)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(warn, []string{"CRC written in lower case"}) {
		t.Errorf("warnings = %q", warn)
	}
	if got := mustBuild(t, m); got != good {
		t.Errorf("Build wrote %q", got)
	}
	// Out of order ids round-trip through Order.
	body := good[:len(good)-8]
	i := strings.Index(body, "5204")
	swapped := withCRC(body[:i] + "5802JP" + strings.Replace(body[i:], "5802JP", "", 1))
	m, warn, err = Decode(swapped)
	if err != nil || m.Order == nil || !reflect.DeepEqual(warn, []string{"top-level ids are not in ascending order"}) {
		t.Fatalf("Decode = %+v %q %v", m, warn, err)
	}
	if got := mustBuild(t, m); got != swapped {
		t.Errorf("Build(Decode(s)) = %q, want %q", got, swapped)
	}
	// Extra zero decimals on a zero-exponent currency are accepted with a warning.
	m, warn, err = Decode(withCRC(strings.Replace(body, "5403498", "5405498.0", 1)))
	if err != nil || len(warn) != 1 || !strings.Contains(warn[0], "only zeros") {
		t.Errorf("Decode = %q, %v", warn, err)
	}
	if v, ok := m.AmountMinor(); !ok || v != 498 {
		t.Errorf("AmountMinor = %d, %v", v, ok)
	}
}

func TestProfileWarnings(t *testing.T) {
	m := jpqrDynamic
	m.Currency, m.Amount, m.PostalCode = "840", "4.98", ""
	r, err := Identify(mustBuild(t, m))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"jpqr: currency is 840, the scheme uses 392", "jpqr: postal code (id 61) is missing"}
	if !reflect.DeepEqual(r.Warnings, want) {
		t.Errorf("warnings = %q, want %q", r.Warnings, want)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		m    MPM
	}{
		{"no account", MPM{Currency: "392"}},
		{"no currency", MPM{MerchantAccounts: jpqrDynamic.MerchantAccounts}},
		{"bad amount", func() MPM { m := jpqrDynamic; m.Amount = "1.5"; return m }()},
		{"bad account id", func() MPM { m := jpqrDynamic; m.MerchantAccounts = []MerchantAccount{{ID: "52", GUI: "x"}}; return m }()},
		{"primitive with gui", func() MPM { m := jpqrDynamic; m.MerchantAccounts = []MerchantAccount{{ID: "15", GUI: "x"}}; return m }()},
		{"too long", func() MPM { m := jpqrDynamic; m.MerchantName = strings.Repeat("x", 100); return m }()},
		{"gui in fields", func() MPM {
			m := jpqrDynamic
			m.MerchantAccounts = []MerchantAccount{{ID: "26", GUI: "a", Fields: []Field{{"00", "b"}}}}
			return m
		}()},
		{"bad order", func() MPM { m := jpqrDynamic; m.Order = []string{"00", "01"}; return m }()},
		{"empty account template", func() MPM { m := jpqrDynamic; m.MerchantAccounts = []MerchantAccount{{ID: "26"}}; return m }()},
		{"empty name", func() MPM { m := jpqrDynamic; m.Order = []string{"00"}; return m }()},
		{"other below 65", func() MPM { m := jpqrDynamic; m.Other = []Field{{"62", "x"}}; return m }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Build(tt.m); !errors.Is(err, ErrBuild) {
				t.Errorf("Build = %q, %v; want ErrBuild", s, err)
			}
		})
	}
}

func TestCRC16(t *testing.T) {
	// CRC-16/CCITT-FALSE check value from the CRC catalogue.
	if got := CRC16("123456789"); got != 0x29B1 {
		t.Errorf("CRC16(123456789) = %04X, want 29B1", got)
	}
}

func TestPublicSamples(t *testing.T) {
	data, err := os.ReadFile("testdata/public_samples.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("bad line %q", line)
		}
		kind, scheme, code := parts[0], parts[1], parts[2]
		n++
		r, err := Identify(code)
		switch kind {
		case "mpm":
			if err != nil || r.Kind != KindEMVMPM || r.Scheme != scheme {
				t.Errorf("%s sample: %+v, %v", scheme, r, err)
				continue
			}
			if got, err := Build(*r.MPM); err != nil || got != code {
				t.Errorf("%s sample: Build(Decode(s)) = %q, %v", scheme, got, err)
			}
		case "cpm":
			if err != nil || r.Kind != KindEMVCPM || r.Scheme != scheme || r.CPM.MaskedPAN == "" {
				t.Errorf("%s cpm sample: %+v, %v", scheme, r, err)
			}
		case "bad":
			want := map[string]error{"checksum": ErrChecksum, "malformed": ErrMalformed}[scheme]
			if !errors.Is(err, want) {
				t.Errorf("bad sample: err = %v, want %v", err, want)
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d samples", n)
	}
}

func TestSchemesTable(t *testing.T) {
	names := map[string]bool{}
	for _, s := range Schemes {
		if s.Name == "" || s.Operator == "" || s.Source == "" || names[s.Name] {
			t.Errorf("bad or duplicate scheme %+v", s)
		}
		names[s.Name] = true
		if s.Currency != "" {
			if _, ok := LookupCurrency(s.Currency); !ok {
				t.Errorf("%s: unknown currency %s", s.Name, s.Currency)
			}
		}
		if len(s.GUIs) == 0 && s.IDs[0] == 0 {
			t.Errorf("%s: neither GUIs nor ids", s.Name)
		}
	}
	// GUIs match case-insensitively, AIDs also with a PIX suffix.
	for _, tt := range []struct{ id, gui, want string }{
		{"26", "BR.GOV.BCB.PIX", "pix"}, {"26", "A00000033301010199", "unionpay"}, {"15", "", "unionpay"},
		{"02", "", "visa"}, {"26", "com.example", ""}, {"30", "A000000677010112", "promptpay"},
	} {
		s := AccountScheme(MerchantAccount{ID: tt.id, GUI: tt.gui})
		got := ""
		if s != nil {
			got = s.Name
		}
		if got != tt.want {
			t.Errorf("AccountScheme(%s, %s) = %q, want %q", tt.id, tt.gui, got, tt.want)
		}
	}
}

func TestPixReferenceVector(t *testing.T) {
	// Build reproduces the Banco Central do Brasil's own BR Code example byte for byte.
	const bcb = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
	if got := mustBuild(t, pixStatic); got != bcb {
		t.Errorf("Build(pixStatic) = %q, want %q", got, bcb)
	}
}
