package paycode

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// CPM is an EMVCo consumer-presented QR code (EMV QRCPS Consumer-Presented Mode): a card
// credential with a one-time application cryptogram, which only the issuer can verify.
// It is masked by construction: it holds no PAN, track 2 data, cardholder name or
// cryptogram, only masked forms and what was present.
type CPM struct {
	// PayloadFormat is tag 85: "CPV01" for EMVCo, "JPQR1" for a JPQR customer-presented code.
	PayloadFormat string           `json:"payload_format"`
	Applications  []CPMApplication `json:"applications"`
	// MaskedPAN is the masked PAN of the first application carrying one (see Mask).
	MaskedPAN string `json:"masked_pan,omitempty"`
}

// CPMApplication is one application template (tag 61).
type CPMApplication struct {
	AID           string `json:"aid"`                       // 4F, upper-case hex
	Label         string `json:"label,omitempty"`           // 50
	Language      string `json:"language,omitempty"`        // 5F2D
	MaskedPAN     string `json:"masked_pan,omitempty"`      // from 5A or track 2, masked
	PANLast4      string `json:"pan_last4,omitempty"`       // 9F25, in clear by design
	HasTrack2     bool   `json:"has_track2"`                // 57 present
	HasCryptogram bool   `json:"has_cryptogram"`            // 9F26 present (in the template or common data)
	PaymentID     string `json:"payment_id,omitempty"`      // JPQR1: masked payment id from 57
	ATC           string `json:"atc,omitempty"`             // 9F36 application transaction counter, hex
	CryptogramInf string `json:"cryptogram_info,omitempty"` // 9F27, hex
}

func cpmErr(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: consumer-presented QR: %s", sentinel, fmt.Sprintf(format, args...))
}

// looksLikeCPM reports whether code could be base64 of BER-TLV starting with tag 85:
// the first base64 character of a byte 0x85 is 'h'.
func looksLikeCPM(code string) bool {
	if len(code) < 8 || code[0] != 'h' {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// DecodeCPM parses, validates and masks an EMVCo consumer-presented code (base64 of
// BER-TLV). Errors wrap ErrMalformed and never quote the code.
func DecodeCPM(code string) (CPM, []string, error) {
	var warnings []string
	raw, err := base64.StdEncoding.DecodeString(code)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(code)
		if err == nil {
			warnings = append(warnings, "base64 without padding")
		}
	}
	if err != nil {
		raw, err = base64.URLEncoding.DecodeString(code)
		if err != nil {
			raw, err = base64.RawURLEncoding.DecodeString(code)
		}
		if err == nil {
			warnings = append(warnings, "URL-safe base64 alphabet")
		}
	}
	if err != nil {
		return CPM{}, nil, cpmErr(ErrMalformed, "not valid base64")
	}
	c, w, err := decodeCPMBytes(raw)
	return c, append(warnings, w...), err
}

type berTLV struct {
	tag         uint32
	constructed bool
	val         []byte
}

// berNext reads one BER-TLV object from b.
func berNext(b []byte) (t berTLV, rest []byte, err error) {
	if len(b) == 0 {
		return t, nil, cpmErr(ErrMalformed, "truncated tag")
	}
	first := b[0]
	if first == 0x00 || first == 0xFF {
		return t, nil, cpmErr(ErrMalformed, "padding byte where a tag was expected")
	}
	t.constructed = first&0x20 != 0
	t.tag = uint32(first)
	i := 1
	if first&0x1F == 0x1F {
		for {
			if i >= len(b) || i > 3 {
				return t, nil, cpmErr(ErrMalformed, "truncated or over-long tag")
			}
			t.tag = t.tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return t, nil, cpmErr(ErrMalformed, "tag %X: length missing", t.tag)
	}
	l := int(b[i])
	i++
	if l&0x80 != 0 {
		n := l & 0x7F
		if n == 0 || n > 2 {
			return t, nil, cpmErr(ErrMalformed, "tag %X: unsupported length form", t.tag)
		}
		if i+n > len(b) {
			return t, nil, cpmErr(ErrMalformed, "tag %X: truncated length", t.tag)
		}
		l = 0
		for k := 0; k < n; k++ {
			l = l<<8 | int(b[i+k])
		}
		i += n
	}
	if l > len(b)-i {
		return t, nil, cpmErr(ErrMalformed, "tag %X: length %d runs past the end of the code", t.tag, l)
	}
	t.val = b[i : i+l]
	return t, b[i+l:], nil
}

// berList parses a sequence of objects, rejecting duplicates.
func berList(b []byte, where string) ([]berTLV, error) {
	var out []berTLV
	for len(b) > 0 {
		t, rest, err := berNext(b)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.tag == t.tag && t.tag != 0x61 {
				return nil, cpmErr(ErrMalformed, "%sduplicate tag %X", where, t.tag)
			}
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

type cpmData struct {
	aid, label, lang, last4, atc, cid []byte
	track2, pan                       []byte
	hasAID, hasTrack2, hasPAN, hasCry bool
}

// collect gathers the primitives of an application or common data template, looking
// into nested templates 62, 63 and 64.
func collect(objs []berTLV, d *cpmData, depth int) error {
	if depth > 4 {
		return cpmErr(ErrMalformed, "templates nested too deeply")
	}
	for _, o := range objs {
		switch o.tag {
		case 0x4F:
			if len(o.val) < 5 || len(o.val) > 16 {
				return cpmErr(ErrMalformed, "application identifier (4F) must be 5 to 16 bytes")
			}
			d.aid, d.hasAID = o.val, true
		case 0x50:
			d.label = o.val
		case 0x5F2D:
			d.lang = o.val
		case 0x9F25:
			d.last4 = o.val
		case 0x9F36:
			d.atc = o.val
		case 0x9F27:
			d.cid = o.val
		case 0x57:
			d.track2, d.hasTrack2 = o.val, true
		case 0x5A:
			d.pan, d.hasPAN = o.val, true
		case 0x9F26:
			if len(o.val) != 8 {
				return cpmErr(ErrMalformed, "application cryptogram (9F26) must be 8 bytes")
			}
			d.hasCry = true
		case 0x62, 0x63, 0x64:
			if !o.constructed {
				return cpmErr(ErrMalformed, "tag %X must be a template", o.tag)
			}
			sub, err := berList(o.val, fmt.Sprintf("template %X: ", o.tag))
			if err != nil {
				return err
			}
			if err := collect(sub, d, depth+1); err != nil {
				return err
			}
		case 0x61:
			return cpmErr(ErrMalformed, "application template (61) nested in a template")
		}
	}
	return nil
}

func decodeCPMBytes(raw []byte) (CPM, []string, error) {
	var c CPM
	var warnings []string
	objs, err := berList(raw, "")
	if err != nil {
		return c, nil, err
	}
	if len(objs) == 0 || objs[0].tag != 0x85 {
		return c, nil, cpmErr(ErrMalformed, "payload format indicator (85) must come first")
	}
	c.PayloadFormat = string(objs[0].val)
	jpqr := false
	switch c.PayloadFormat {
	case "CPV01":
	case "JPQR1":
		jpqr = true
	default:
		return c, nil, cpmErr(ErrMalformed, "payload format indicator (85) must be CPV01")
	}
	var common cpmData
	var apps [][]berTLV
	for _, o := range objs[1:] {
		switch o.tag {
		case 0x61:
			if !o.constructed {
				return c, nil, cpmErr(ErrMalformed, "application template (61) must be constructed")
			}
			sub, err := berList(o.val, "application template: ")
			if err != nil {
				return c, nil, err
			}
			apps = append(apps, sub)
		case 0x62, 0x64:
			if err := collect([]berTLV{o}, &common, 0); err != nil {
				return c, nil, err
			}
		case 0x85:
			return c, nil, cpmErr(ErrMalformed, "duplicate payload format indicator (85)")
		default:
			warnings = append(warnings, fmt.Sprintf("unexpected top-level tag %X ignored", o.tag))
		}
	}
	if len(apps) == 0 {
		return c, nil, cpmErr(ErrMalformed, "no application template (61)")
	}
	for i, a := range apps {
		d := cpmData{}
		if err := collect(a, &d, 1); err != nil {
			return c, nil, err
		}
		if !d.hasAID {
			return c, nil, cpmErr(ErrMalformed, "application %d has no application identifier (4F)", i+1)
		}
		lang := d.lang
		if lang == nil {
			lang = common.lang
		}
		app := CPMApplication{AID: strings.ToUpper(hex.EncodeToString(d.aid)), Label: printable(d.label), Language: printable(lang)}
		track2, pan := d.track2, d.pan
		hasT2, hasPAN := d.hasTrack2 || common.hasTrack2, d.hasPAN || common.hasPAN
		if !d.hasTrack2 {
			track2 = common.track2
		}
		if !d.hasPAN {
			pan = common.pan
		}
		app.HasTrack2 = hasT2
		app.HasCryptogram = d.hasCry || common.hasCry
		last4 := d.last4
		if last4 == nil {
			last4 = common.last4
		}
		if len(last4) == 2 {
			app.PANLast4 = hex.EncodeToString(last4)
		}
		atc := d.atc
		if atc == nil {
			atc = common.atc
		}
		app.ATC = strings.ToUpper(hex.EncodeToString(atc))
		cid := d.cid
		if cid == nil {
			cid = common.cid
		}
		app.CryptogramInf = strings.ToUpper(hex.EncodeToString(cid))
		if jpqr {
			if !hasT2 {
				return c, nil, cpmErr(ErrMalformed, "application %d has no payment id (57)", i+1)
			}
			app.PaymentID = Mask(string(track2))
		} else {
			var digits string
			switch {
			case hasPAN:
				p, ok := bcdDigits(pan, false)
				if !ok || len(p) < 12 || len(p) > 19 {
					return c, nil, cpmErr(ErrMalformed, "application %d: PAN (5A) is not 12 to 19 BCD digits", i+1)
				}
				digits = p
			case hasT2:
				t2, ok := bcdDigits(track2, true)
				p, _, found := strings.Cut(t2, "D")
				if !ok || !found || len(p) < 12 || len(p) > 19 {
					return c, nil, cpmErr(ErrMalformed, "application %d: track 2 (57) is not a PAN, separator and expiry", i+1)
				}
				digits = p
			default:
				return c, nil, cpmErr(ErrMalformed, "application %d has neither track 2 (57) nor a PAN (5A)", i+1)
			}
			if hasPAN && hasT2 {
				t2, _ := bcdDigits(track2, true)
				if p, _, _ := strings.Cut(t2, "D"); p != digits {
					return c, nil, cpmErr(ErrMalformed, "application %d: PAN (5A) and track 2 (57) disagree", i+1)
				}
			}
			if !luhn(digits) {
				warnings = append(warnings, fmt.Sprintf("application %d: PAN fails the Luhn check", i+1))
			}
			if app.PANLast4 != "" && app.PANLast4 != digits[len(digits)-4:] {
				warnings = append(warnings, fmt.Sprintf("application %d: last four digits (9F25) disagree with the PAN", i+1))
			}
			app.MaskedPAN = Mask(digits)
			if c.MaskedPAN == "" {
				c.MaskedPAN = app.MaskedPAN
			}
			if !app.HasCryptogram {
				warnings = append(warnings, fmt.Sprintf("application %d has no application cryptogram (9F26)", i+1))
			}
		}
		c.Applications = append(c.Applications, app)
	}
	return c, warnings, nil
}

// bcdDigits turns packed BCD into digits; trailing F nibbles are padding. With track2,
// the separator nibble D is kept as 'D'.
func bcdDigits(b []byte, track2 bool) (string, bool) {
	out := make([]byte, 0, 2*len(b))
	pad := false
	for _, x := range b {
		for _, n := range [2]byte{x >> 4, x & 0xF} {
			switch {
			case pad:
				if n != 0xF {
					return "", false
				}
			case n <= 9:
				out = append(out, '0'+n)
			case n == 0xD && track2:
				out = append(out, 'D')
			case n == 0xF:
				pad = true
			default:
				return "", false
			}
		}
	}
	return string(out), true
}

// printable keeps printable ASCII and replaces anything else with '?'.
func printable(b []byte) string {
	if b == nil {
		return ""
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// cardNetworks maps registered application provider ids (the first 5 bytes of an AID)
// to scheme and operator names, from ISO 7816-5 registrations as listed by EMVCo.
var cardNetworks = map[string][2]string{
	"A000000003": {"visa", "Visa"},
	"A000000004": {"mastercard", "Mastercard"},
	"A000000025": {"amex", "American Express"},
	"A000000065": {"jcb", "JCB"},
	"A000000152": {"discover", "Discover"},
	"A000000333": {"unionpay", "UnionPay International"},
	"A000000277": {"interac", "Interac"},
	"A000000524": {"rupay", "NPCI (RuPay)"},
}

// cpmScheme names the scheme and operator of a decoded CPM from its first AID.
func cpmScheme(c *CPM) (scheme, operator string) {
	if c.PayloadFormat == "JPQR1" {
		return "jpqr", "Payments Japan Association (JPQR)"
	}
	if len(c.Applications) > 0 && len(c.Applications[0].AID) >= 10 {
		if n, ok := cardNetworks[c.Applications[0].AID[:10]]; ok {
			return n[0], n[1]
		}
	}
	return "emvco", "card issuer (EMVCo consumer-presented)"
}
