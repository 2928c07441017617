package paycode

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Field is one data object of an EMVCo merchant-presented code: a two-digit id and its
// value. Lengths in the code count characters (runes), not bytes.
type Field struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// MerchantAccount is a merchant account information object, ids 02-51.
type MerchantAccount struct {
	ID string `json:"id"`
	// GUI is sub-field 00 of a template (ids 26-51): the globally unique identifier of
	// the scheme, an AID, a reverse domain name or a UUID. Empty for ids 02-25.
	GUI string `json:"guid,omitempty"`
	// Value is the primitive value of ids 02-25 (card-network merchant ids). Empty for
	// templates.
	Value string `json:"value,omitempty"`
	// Fields are a template's sub-fields after the GUI, in code order.
	Fields []Field `json:"fields,omitempty"`
}

// Point-of-initiation values (id 01).
const (
	PointStatic  = "11" // the same code for many payments; the payer keys in the amount
	PointDynamic = "12" // a code for one payment, usually with an amount
)

// Additional data sub-field ids (template 62).
const (
	AddBillNumber          = "01"
	AddMobileNumber        = "02"
	AddStoreLabel          = "03"
	AddLoyaltyNumber       = "04"
	AddReferenceLabel      = "05"
	AddCustomerLabel       = "06"
	AddTerminalLabel       = "07"
	AddPurpose             = "08"
	AddConsumerDataRequest = "09"
)

// AdditionalNames maps template 62 sub-field ids to the names posctl's JSON uses.
var AdditionalNames = map[string]string{
	AddBillNumber: "bill_number", AddMobileNumber: "mobile_number", AddStoreLabel: "store_label",
	AddLoyaltyNumber: "loyalty_number", AddReferenceLabel: "reference_label",
	AddCustomerLabel: "customer_label", AddTerminalLabel: "terminal_label",
	AddPurpose: "purpose", AddConsumerDataRequest: "consumer_data_request",
}

// MPM is an EMVCo merchant-presented QR code (EMV QRCPS Merchant-Presented Mode). Empty
// strings and nil slices mean "absent". Decode fills it; Build encodes it, computing the
// CRC. For every valid code s, Build(Decode(s)) == s except that Build writes the CRC in
// upper case; for every MPM x that Build accepts, Decode(Build(x)) == x.
type MPM struct {
	PayloadFormat         string            `json:"payload_format"`                    // 00: "01" ("02" seen from DuitNow)
	PointOfInitiation     string            `json:"point_of_initiation,omitempty"`     // 01: PointStatic or PointDynamic
	MerchantAccounts      []MerchantAccount `json:"merchant_accounts"`                 // 02-51, in code order
	MCC                   string            `json:"mcc,omitempty"`                     // 52: ISO 18245 merchant category code
	Currency              string            `json:"currency"`                          // 53: ISO 4217 numeric
	Amount                string            `json:"amount,omitempty"`                  // 54: decimal, as in the code
	TipIndicator          string            `json:"tip_indicator,omitempty"`           // 55: "01" prompt, "02" fixed fee, "03" percentage
	ConvenienceFeeFixed   string            `json:"convenience_fee_fixed,omitempty"`   // 56
	ConvenienceFeePercent string            `json:"convenience_fee_percent,omitempty"` // 57
	Country               string            `json:"country,omitempty"`                 // 58: ISO 3166-1 alpha-2
	MerchantName          string            `json:"merchant_name,omitempty"`           // 59
	MerchantCity          string            `json:"merchant_city,omitempty"`           // 60
	PostalCode            string            `json:"postal_code,omitempty"`             // 61
	Additional            []Field           `json:"additional,omitempty"`              // 62 sub-fields, code order
	Language              []Field           `json:"language,omitempty"`                // 64 sub-fields: 00 language, 01 name, 02 city
	Other                 []Field           `json:"other,omitempty"`                   // 65-99, raw, code order
	// Order lists the top-level ids (without 63) in code order when the code did not
	// use the canonical order Build writes: 00, 01, merchant accounts as listed, 52-62,
	// 64, Other as listed. Nil otherwise. Build honours it so that unusual codes
	// round-trip byte for byte.
	Order []string `json:"order,omitempty"`
}

// AdditionalField returns the value of sub-field id of template 62 and whether present.
func (m *MPM) AdditionalField(id string) (string, bool) { return getField(m.Additional, id) }

// LanguageField returns the value of sub-field id of template 64 and whether present.
func (m *MPM) LanguageField(id string) (string, bool) { return getField(m.Language, id) }

func getField(fs []Field, id string) (string, bool) {
	for _, f := range fs {
		if f.ID == id {
			return f.Value, true
		}
	}
	return "", false
}

// AmountMinor returns the transaction amount in minor units of the code's currency.
// ok is false when the code has no amount or its currency is unknown.
func (m *MPM) AmountMinor() (minor int64, ok bool) {
	if m.Amount == "" {
		return 0, false
	}
	c, found := LookupCurrency(m.Currency)
	if !found {
		return 0, false
	}
	v, err := ParseAmount(m.Amount, c)
	return v, err == nil
}

// Dynamic reports whether the code is for one payment (point of initiation 12).
func (m *MPM) Dynamic() bool { return m.PointOfInitiation == PointDynamic }

// Scheme returns the recognised scheme that names the code (see Schemes), or nil.
func (m *MPM) Scheme() *Scheme {
	first := -1
	for i := range m.MerchantAccounts {
		k := lookupAccountScheme(&m.MerchantAccounts[i])
		if k < 0 {
			continue
		}
		if Schemes[k].Umbrella {
			return &Schemes[k]
		}
		if first < 0 {
			first = k
		}
	}
	if first < 0 {
		return nil
	}
	return &Schemes[first]
}

// AccountScheme returns the recognised scheme of one merchant account, or nil.
func AccountScheme(a MerchantAccount) *Scheme {
	if len(a.ID) != 2 || !isDigits(a.ID) {
		return nil
	}
	if k := lookupAccountScheme(&a); k >= 0 {
		return &Schemes[k]
	}
	return nil
}

// Decode parses an EMVCo merchant-presented code strictly where a broken code would mean
// a wrong payment, and leniently where wallets accept codes that break the letter of the
// specification; each leniency is listed in warnings. Errors wrap ErrMalformed,
// ErrChecksum, ErrAmount or ErrCurrency.
func Decode(code string) (m MPM, warnings []string, err error) {
	d := decoder{}
	m, err = d.decode(code)
	return m, d.warnings, err
}

type decoder struct {
	warnings []string
}

func (d *decoder) warn(format string, args ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf(format, args...))
}

func mpmErr(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: merchant-presented QR: %s", sentinel, fmt.Sprintf(format, args...))
}

// skipRunes returns the byte offset n runes after i in s, or false if s ends first.
func skipRunes(s string, i, n int) (int, bool) {
	for ; n > 0; n-- {
		if i >= len(s) {
			return 0, false
		}
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i, true
}

func twoDigits(s string, i int) (int, bool) {
	a, b := s[i], s[i+1]
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

// tlvIter walks "IILLvalue" data objects.
type tlvIter struct {
	s   string
	pos int
}

// next returns the next id, numeric id and value; done at the end. where names the
// template for error messages.
func (t *tlvIter) next(where string) (id string, n int, value string, done bool, err error) {
	if t.pos >= len(t.s) {
		return "", 0, "", true, nil
	}
	if len(t.s)-t.pos < 4 {
		return "", 0, "", false, mpmErr(ErrMalformed, "%struncated data object at the end", where)
	}
	n, ok := twoDigits(t.s, t.pos)
	if !ok {
		return "", 0, "", false, mpmErr(ErrMalformed, "%sdata object id is not two digits", where)
	}
	id = t.s[t.pos : t.pos+2]
	l, ok := twoDigits(t.s, t.pos+2)
	if !ok {
		return "", 0, "", false, mpmErr(ErrMalformed, "%sid %s: length is not two digits", where, id)
	}
	start := t.pos + 4
	end, ok := skipRunes(t.s, start, l)
	if !ok {
		return "", 0, "", false, mpmErr(ErrMalformed, "%sid %s: length %02d runs past the end of the code", where, id, l)
	}
	t.pos = end
	return id, n, t.s[start:end], false, nil
}

// subFields parses a template's value into fields, strictly: no overrun, no duplicates.
func (d *decoder) subFields(parent, v string) ([]Field, error) {
	where := "template " + parent + ": "
	var seen [100]bool
	count := 0
	// Count first so the slice is allocated once.
	it := tlvIter{s: v}
	for {
		_, n, _, done, err := it.next(where)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		if seen[n] {
			return nil, mpmErr(ErrMalformed, "%sduplicate sub-field %02d", where, n)
		}
		seen[n] = true
		count++
	}
	if count == 0 {
		return nil, mpmErr(ErrMalformed, "%sempty template", where)
	}
	fs := make([]Field, 0, count)
	it = tlvIter{s: v}
	for {
		id, _, val, done, _ := it.next(where)
		if done {
			break
		}
		if val == "" {
			d.warn("template %s: sub-field %s is empty", parent, id)
		}
		fs = append(fs, Field{ID: id, Value: val})
	}
	return fs, nil
}

// canonicalOrder appends the order Build writes for m's content.
func canonicalOrder(m *MPM, dst []string) []string {
	if m.PayloadFormat != "" {
		dst = append(dst, "00")
	}
	if m.PointOfInitiation != "" {
		dst = append(dst, "01")
	}
	for _, a := range m.MerchantAccounts {
		dst = append(dst, a.ID)
	}
	for _, p := range [...]struct {
		id string
		v  string
	}{{"52", m.MCC}, {"53", m.Currency}, {"54", m.Amount}, {"55", m.TipIndicator}, {"56", m.ConvenienceFeeFixed},
		{"57", m.ConvenienceFeePercent}, {"58", m.Country}, {"59", m.MerchantName}, {"60", m.MerchantCity}, {"61", m.PostalCode}} {
		if p.v != "" {
			dst = append(dst, p.id)
		}
	}
	if m.Additional != nil {
		dst = append(dst, "62")
	}
	if m.Language != nil {
		dst = append(dst, "64")
	}
	for _, f := range m.Other {
		dst = append(dst, f.ID)
	}
	return dst
}

func (d *decoder) decode(code string) (MPM, error) {
	var m MPM
	if !utf8.ValidString(code) {
		return m, mpmErr(ErrMalformed, "not valid UTF-8")
	}
	var seen [100]bool
	var order [100]string
	norder := 0
	ascending := true
	last := -1
	crcAt := -1
	it := tlvIter{s: code}
	for {
		at := it.pos
		id, n, v, done, err := it.next("")
		if err != nil {
			return m, err
		}
		if done {
			break
		}
		if at == 0 && id != "00" {
			return m, mpmErr(ErrMalformed, "payload format indicator (id 00) must come first")
		}
		if seen[n] {
			return m, mpmErr(ErrMalformed, "duplicate id %s", id)
		}
		seen[n] = true
		if id == "63" {
			if len(v) != 4 {
				return m, mpmErr(ErrMalformed, "CRC (id 63) must be 4 hex digits")
			}
			if it.pos != len(code) {
				return m, mpmErr(ErrMalformed, "data after the CRC (id 63 must be last)")
			}
			crcAt = at
			break
		}
		if v == "" {
			// Seen in the wild as "6200" (HK FPS). Representable, so accepted for
			// templates 62/64 and ids 65-99; elsewhere an empty value is an error.
			if n != 62 && n != 64 && n < 65 {
				return m, mpmErr(ErrMalformed, "id %s has length 00", id)
			}
			d.warn("id %s is empty (length 00)", id)
		}
		if id != "00" {
			if n < last {
				ascending = false
			}
			last = n
		}
		order[norder] = id
		norder++
		if err := d.field(&m, id, n, v); err != nil {
			return m, err
		}
	}
	if crcAt < 0 {
		return m, mpmErr(ErrMalformed, "CRC (id 63) is missing")
	}
	got := code[crcAt+4:]
	want := CRC16(code[:crcAt+4])
	gv, ok := parseHex16(got)
	if !ok {
		return m, mpmErr(ErrMalformed, "CRC (id 63) is not 4 hex digits")
	}
	if gv != want {
		return m, mpmErr(ErrChecksum, "CRC is %s but the content gives %s; the code is damaged or altered", strings.ToUpper(got), crcHex(want))
	}
	if got != strings.ToUpper(got) {
		d.warn("CRC written in lower case")
	}
	if !ascending {
		d.warn("top-level ids are not in ascending order")
	}
	if err := d.check(&m); err != nil {
		return m, err
	}
	// Record the order only when Build would not reproduce it.
	var buf [100]string
	canon := canonicalOrder(&m, buf[:0])
	same := len(canon) == norder
	for i := 0; same && i < norder; i++ {
		same = canon[i] == order[i]
	}
	if !same {
		m.Order = append([]string(nil), order[:norder]...)
	}
	return m, nil
}

func (d *decoder) field(m *MPM, id string, n int, v string) error {
	switch {
	case n == 0:
		switch v {
		case "01":
		case "02":
			d.warn("payload format indicator is 02, not 01 (seen in DuitNow codes)")
		default:
			return mpmErr(ErrMalformed, "payload format indicator (id 00) must be 01")
		}
		m.PayloadFormat = v
	case n == 1:
		if v != PointStatic && v != PointDynamic {
			return mpmErr(ErrMalformed, "point of initiation (id 01) must be 11 or 12")
		}
		m.PointOfInitiation = v
	case n >= 2 && n <= 25:
		m.MerchantAccounts = append(m.MerchantAccounts, MerchantAccount{ID: id, Value: v})
	case n >= 26 && n <= 51:
		fs, err := d.subFields(id, v)
		if err != nil {
			return err
		}
		a := MerchantAccount{ID: id}
		if fs[0].ID == "00" {
			a.GUI = fs[0].Value
			fs = fs[1:]
			if a.GUI == "" {
				return mpmErr(ErrMalformed, "merchant account %s: globally unique identifier (00) is empty", id)
			}
		} else {
			if _, has := getField(fs, "00"); has {
				return mpmErr(ErrMalformed, "merchant account %s: globally unique identifier (00) must come first", id)
			}
			d.warn("merchant account %s has no globally unique identifier (00)", id)
		}
		if len(fs) == 0 {
			fs = nil
		}
		a.Fields = fs
		m.MerchantAccounts = append(m.MerchantAccounts, a)
	case n == 52:
		m.MCC = v
	case n == 53:
		m.Currency = v
	case n == 54:
		m.Amount = v
	case n == 55:
		m.TipIndicator = v
	case n == 56:
		m.ConvenienceFeeFixed = v
	case n == 57:
		m.ConvenienceFeePercent = v
	case n == 58:
		m.Country = v
	case n == 59:
		m.MerchantName = v
	case n == 60:
		m.MerchantCity = v
	case n == 61:
		m.PostalCode = v
	case n == 62 && v == "":
		m.Additional = []Field{}
	case n == 64 && v == "":
		m.Language = []Field{}
	case n == 62:
		fs, err := d.subFields(id, v)
		if err != nil {
			return err
		}
		m.Additional = fs
	case n == 64:
		fs, err := d.subFields(id, v)
		if err != nil {
			return err
		}
		m.Language = fs
	default: // 65-99
		m.Other = append(m.Other, Field{ID: id, Value: v})
	}
	return nil
}

// check applies the rules that need several fields, and the scheme profiles.
func (d *decoder) check(m *MPM) error {
	if len(m.MerchantAccounts) == 0 {
		return mpmErr(ErrMalformed, "no merchant account information (ids 02-51)")
	}
	if m.Currency == "" {
		return mpmErr(ErrMalformed, "transaction currency (id 53) is missing")
	}
	if len(m.Currency) != 3 || !isDigits(m.Currency) {
		return mpmErr(ErrCurrency, "transaction currency (id 53) must be a three-digit ISO 4217 code")
	}
	cur, ok := LookupCurrency(m.Currency)
	if !ok {
		return mpmErr(ErrCurrency, "transaction currency %s is not an ISO 4217 currency", m.Currency)
	}
	if m.Amount != "" {
		if len(m.Amount) > 13 {
			return mpmErr(ErrAmount, "transaction amount (id 54) is longer than 13 characters")
		}
		_, zeros, reason := parseAmount(m.Amount, cur.Exponent)
		if reason != "" {
			return mpmErr(ErrAmount, "transaction amount (id 54) in %s %s", cur.Code, reason)
		}
		if zeros {
			d.warn("transaction amount has more decimal places than %s uses (only zeros)", cur.Code)
		}
		if m.PointOfInitiation == PointStatic {
			d.warn("static code (point of initiation 11) carries an amount")
		}
	}
	if m.MCC == "" {
		d.warn("merchant category code (id 52) is missing")
	} else if len(m.MCC) != 4 || !isDigits(m.MCC) {
		d.warn("merchant category code (id 52) is not four digits")
	}
	switch m.TipIndicator {
	case "":
	case "01":
	case "02":
		if m.ConvenienceFeeFixed == "" {
			d.warn("tip indicator 02 without a fixed convenience fee (id 56)")
		}
	case "03":
		if m.ConvenienceFeePercent == "" {
			d.warn("tip indicator 03 without a convenience fee percentage (id 57)")
		}
	default:
		d.warn("tip or convenience indicator (id 55) is not 01, 02 or 03")
	}
	if m.ConvenienceFeeFixed != "" {
		if _, _, reason := parseAmount(m.ConvenienceFeeFixed, cur.Exponent); reason != "" {
			return mpmErr(ErrAmount, "convenience fee (id 56) in %s %s", cur.Code, reason)
		}
	}
	if m.ConvenienceFeePercent != "" {
		if _, _, reason := parseAmount(m.ConvenienceFeePercent, 2); reason != "" {
			return mpmErr(ErrAmount, "convenience fee percentage (id 57) %s", reason)
		}
	}
	if m.Country == "" {
		d.warn("country code (id 58) is missing")
	} else if len(m.Country) != 2 || !isUpperAlpha(m.Country) {
		d.warn("country code (id 58) is not two upper-case letters")
	}
	if m.MerchantName == "" {
		d.warn("merchant name (id 59) is missing")
	} else if utf8.RuneCountInString(m.MerchantName) > 25 {
		d.warn("merchant name (id 59) is longer than 25 characters")
	}
	if m.MerchantCity == "" {
		d.warn("merchant city (id 60) is missing")
	} else if utf8.RuneCountInString(m.MerchantCity) > 15 {
		d.warn("merchant city (id 60) is longer than 15 characters")
	}
	if m.Language != nil {
		if l, ok := getField(m.Language, "00"); !ok || len(l) != 2 {
			d.warn("language template (id 64) has no two-letter language (00)")
		}
		if _, ok := getField(m.Language, "01"); !ok {
			d.warn("language template (id 64) has no alternate merchant name (01)")
		}
	}
	d.profile(m)
	return nil
}

// profile applies the rules of the schemes the code names.
func (d *decoder) profile(m *MPM) {
	for i := range m.MerchantAccounts {
		a := &m.MerchantAccounts[i]
		k := lookupAccountScheme(a)
		if k < 0 {
			continue
		}
		s := &Schemes[k]
		if s.Currency != "" && m.Currency != s.Currency {
			d.warn("%s: currency is %s, the scheme uses %s", s.Name, m.Currency, s.Currency)
		}
		if s.Country != "" && m.Country != "" && m.Country != s.Country {
			d.warn("%s: country is %s, the scheme uses %s", s.Name, m.Country, s.Country)
		}
		switch s.Name {
		case "jpqr":
			// go.mercari.io/go-emv-code/mpm/jpqr: 01 13 digits, 02 4, 03 6, 04 6.
			for _, r := range [...]struct {
				id string
				n  int
			}{{"01", 13}, {"02", 4}, {"03", 6}, {"04", 6}} {
				if v, ok := getField(a.Fields, r.id); !ok || len(v) != r.n || !isDigits(v) {
					d.warn("jpqr: merchant account %s sub-field %s should be %d digits", a.ID, r.id, r.n)
				}
			}
			if m.PostalCode == "" {
				d.warn("jpqr: postal code (id 61) is missing")
			}
		case "pix":
			if _, ok := getField(a.Fields, "01"); !ok {
				if _, ok := getField(a.Fields, "25"); !ok {
					d.warn("pix: merchant account %s has neither a key (01) nor a URL (25)", a.ID)
				}
			}
			if _, ok := getField(m.Additional, AddReferenceLabel); !ok {
				d.warn("pix: reference label (62/05, the txid) is missing")
			}
		case "promptpay":
			if len(a.Fields) == 0 {
				d.warn("promptpay: merchant account %s has no proxy (01 mobile, 02 tax id, 03 e-wallet)", a.ID)
			}
		}
	}
}

func isUpperAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func parseHex16(s string) (uint16, bool) {
	if len(s) != 4 {
		return 0, false
	}
	var v uint16
	for i := 0; i < 4; i++ {
		c := s[i]
		var x byte
		switch {
		case c >= '0' && c <= '9':
			x = c - '0'
		case c >= 'A' && c <= 'F':
			x = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			x = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(x)
	}
	return v, true
}
