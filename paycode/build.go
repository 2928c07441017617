package paycode

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

func buildErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBuild, fmt.Sprintf(format, args...))
}

// Build encodes m as an EMVCo merchant-presented code and appends the CRC. An empty
// PayloadFormat is written as "01". Fields are written in the canonical order (00, 01,
// merchant accounts as listed, 52-62, 64, Other as listed, 63) unless m.Order says
// otherwise. Build refuses, with ErrBuild, anything Decode would reject, so its output
// always decodes; for every m it accepts (with PayloadFormat set), Decode(Build(m)) == m.
func Build(m MPM) (string, error) {
	if m.PayloadFormat == "" {
		m.PayloadFormat = "01"
	}
	var b strings.Builder
	b.Grow(160)
	put := func(id, v string) error {
		n := utf8.RuneCountInString(v)
		if (n == 0 && id != "62" && id != "64" && id < "65") || n > 99 {
			return buildErr("id %s: value must be 1 to 99 characters", id)
		}
		b.WriteString(id)
		b.WriteByte(byte('0' + n/10))
		b.WriteByte(byte('0' + n%10))
		b.WriteString(v)
		return nil
	}
	template := func(id string, gui string, hasGUI bool, fs []Field) (string, error) {
		var t strings.Builder
		var seen [100]bool
		w := func(fid, v string) error {
			if len(fid) != 2 || !isDigits(fid) {
				return buildErr("template %s: sub-field id must be two digits", id)
			}
			n := int(fid[0]-'0')*10 + int(fid[1]-'0')
			if seen[n] {
				return buildErr("template %s: duplicate sub-field %s", id, fid)
			}
			seen[n] = true
			c := utf8.RuneCountInString(v)
			if c > 99 {
				return buildErr("template %s: sub-field %s is longer than 99 characters", id, fid)
			}
			t.WriteString(fid)
			t.WriteByte(byte('0' + c/10))
			t.WriteByte(byte('0' + c%10))
			t.WriteString(v)
			return nil
		}
		if hasGUI {
			if err := w("00", gui); err != nil {
				return "", err
			}
		}
		for _, f := range fs {
			if f.ID == "00" && hasGUI {
				return "", buildErr("template %s: put the GUI in MerchantAccount.GUI, not in Fields", id)
			}
			if err := w(f.ID, f.Value); err != nil {
				return "", err
			}
		}
		if t.Len() == 0 && id != "62" && id != "64" {
			return "", buildErr("template %s is empty", id)
		}
		return t.String(), nil
	}

	values := make(map[string]string, 24)
	var canon []string
	add := func(id, v string) error {
		if _, dup := values[id]; dup {
			return buildErr("duplicate id %s", id)
		}
		values[id] = v
		canon = append(canon, id)
		return nil
	}
	if err := add("00", m.PayloadFormat); err != nil {
		return "", err
	}
	if m.PointOfInitiation != "" {
		if err := add("01", m.PointOfInitiation); err != nil {
			return "", err
		}
	}
	for _, a := range m.MerchantAccounts {
		n, ok := 0, len(a.ID) == 2 && isDigits(a.ID)
		if ok {
			n = int(a.ID[0]-'0')*10 + int(a.ID[1]-'0')
		}
		switch {
		case !ok || n < 2 || n > 51:
			return "", buildErr("merchant account id must be 02 to 51")
		case n <= 25:
			if a.GUI != "" || a.Fields != nil {
				return "", buildErr("merchant account %s is a primitive id: set Value only", a.ID)
			}
			if err := add(a.ID, a.Value); err != nil {
				return "", err
			}
		default:
			if a.Value != "" {
				return "", buildErr("merchant account %s is a template: set GUI and Fields, not Value", a.ID)
			}
			if a.Fields != nil && len(a.Fields) == 0 {
				return "", buildErr("merchant account %s: Fields is empty but not nil", a.ID)
			}
			v, err := template(a.ID, a.GUI, a.GUI != "", a.Fields)
			if err != nil {
				return "", err
			}
			if err := add(a.ID, v); err != nil {
				return "", err
			}
		}
	}
	for _, p := range [...]struct{ id, v string }{{"52", m.MCC}, {"53", m.Currency}, {"54", m.Amount},
		{"55", m.TipIndicator}, {"56", m.ConvenienceFeeFixed}, {"57", m.ConvenienceFeePercent}, {"58", m.Country},
		{"59", m.MerchantName}, {"60", m.MerchantCity}, {"61", m.PostalCode}} {
		if p.v != "" {
			if err := add(p.id, p.v); err != nil {
				return "", err
			}
		}
	}
	for _, t := range [...]struct {
		id string
		fs []Field
	}{{"62", m.Additional}, {"64", m.Language}} {
		if t.fs == nil {
			continue
		}
		v, err := template(t.id, "", false, t.fs)
		if err != nil {
			return "", err
		}
		if err := add(t.id, v); err != nil {
			return "", err
		}
	}
	for _, f := range m.Other {
		if len(f.ID) != 2 || !isDigits(f.ID) || f.ID < "65" {
			return "", buildErr("Other holds ids 65 to 99 only")
		}
		if err := add(f.ID, f.Value); err != nil {
			return "", err
		}
	}

	order := canon
	if m.Order != nil {
		if len(m.Order) != len(canon) {
			return "", buildErr("Order must list exactly the ids present")
		}
		seen := make(map[string]bool, len(m.Order))
		for _, id := range m.Order {
			if _, ok := values[id]; !ok || seen[id] {
				return "", buildErr("Order must list exactly the ids present")
			}
			seen[id] = true
		}
		if m.Order[0] != "00" {
			return "", buildErr("Order must start with 00")
		}
		same := true
		for i := range canon {
			same = same && canon[i] == m.Order[i]
		}
		if same {
			return "", buildErr("Order equals the canonical order: leave it nil")
		}
		order = m.Order
	}
	for _, id := range order {
		if err := put(id, values[id]); err != nil {
			return "", err
		}
	}
	b.WriteString("6304")
	b.WriteString(crcHex(CRC16(b.String())))
	s := b.String()
	got, _, err := Decode(s)
	if err != nil {
		// Decode's error already says which rule failed; keep its sentinel too.
		return "", fmt.Errorf("%w: the code would not decode: %w", ErrBuild, err)
	}
	if !equalMPM(&got, &m) {
		return "", buildErr("the code would not decode to the same fields (check for empty sub-field lists)")
	}
	return s, nil
}

// equalMPM compares two MPMs field by field (nil and empty slices differ, as in Decode).
func equalMPM(a, b *MPM) bool {
	if a.PayloadFormat != b.PayloadFormat || a.PointOfInitiation != b.PointOfInitiation || a.MCC != b.MCC ||
		a.Currency != b.Currency || a.Amount != b.Amount || a.TipIndicator != b.TipIndicator ||
		a.ConvenienceFeeFixed != b.ConvenienceFeeFixed || a.ConvenienceFeePercent != b.ConvenienceFeePercent ||
		a.Country != b.Country || a.MerchantName != b.MerchantName || a.MerchantCity != b.MerchantCity ||
		a.PostalCode != b.PostalCode {
		return false
	}
	if len(a.MerchantAccounts) != len(b.MerchantAccounts) {
		return false
	}
	for i := range a.MerchantAccounts {
		x, y := &a.MerchantAccounts[i], &b.MerchantAccounts[i]
		if x.ID != y.ID || x.GUI != y.GUI || x.Value != y.Value || !equalFields(x.Fields, y.Fields) {
			return false
		}
	}
	if !equalFields(a.Additional, b.Additional) || !equalFields(a.Language, b.Language) || !equalFields(a.Other, b.Other) {
		return false
	}
	if (a.Order == nil) != (b.Order == nil) || len(a.Order) != len(b.Order) {
		return false
	}
	for i := range a.Order {
		if a.Order[i] != b.Order[i] {
			return false
		}
	}
	return true
}

func equalFields(a, b []Field) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
