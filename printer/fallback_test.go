package printer

import (
	"bytes"
	"testing"
	"time"
)

// The masked code's ellipsis has no glyph in code page 437: it must print as "..."
// rather than "?", so the clerk can still read the last four digits.
func TestMaskedCodeEllipsisPrintsAsDots(t *testing.T) {
	data, err := EncodeReceipt(Receipt{
		SaleID: "01a20449-7973-7a01-a827-84d0b98ed958", Time: time.Unix(0, 0).UTC(),
		AmountMinor: 12000, Currency: "KRW", Scheme: "alipay", MaskedCode: "…3456#f03e9a74", Status: "approved",
	}, DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("...3456#f03e9a74")) {
		t.Fatalf("masked code not printed as ...3456#f03e9a74:\n%q", data)
	}
}
