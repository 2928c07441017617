package printer

import (
	"fmt"

	"github.com/walletless/walletless/printer/escpos"
)

// MerchantQR is a slip with a merchant-presented payment code (an EMVCo MPM or JPQR
// string built with paycode.Build) for the customer to scan with a wallet app.
type MerchantQR struct {
	Header      []string // merchant name / address lines
	SaleID      string
	Payload     string // the complete code, CRC included; printed as a QR, never as text
	AmountMinor int64
	Currency    string
	Language    string // "en" (default), "ko", "ja", "zh"
}

var scanPrompt = map[string]string{
	"en": "Scan with your wallet app to pay",
	"ko": "결제 앱으로 스캔하여 결제하세요",
	"ja": "決済アプリで読み取ってお支払いください",
	"zh": "请用支付应用扫码付款",
}

// EncodeMerchantQR lays out a merchant-presented QR slip: header, amount, a large QR of
// the payload (error correction M) and the sale id. The payload is not printed as
// text: it is a payment instrument for this sale only.
func EncodeMerchantQR(m MerchantQR, p Profile) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	lang := m.Language
	if lang == "" {
		lang = "en"
	}
	lb, ok := languages[lang]
	if !ok {
		return nil, fmt.Errorf("printer: unknown receipt language %q", m.Language)
	}
	if m.Payload == "" || len(m.Payload) > 512 {
		return nil, fmt.Errorf("printer: merchant QR payload of %d bytes (want 1..512)", len(m.Payload))
	}
	w := newWriter(p)
	amount, err := w.amount(m.AmountMinor, m.Currency)
	if err != nil {
		return nil, err
	}
	b := w.b
	b.Align(escpos.Center)
	for i, h := range m.Header {
		if i == 0 {
			b.Bold(true)
		}
		for _, l := range w.wrap(h, p.Columns) {
			w.line(l)
		}
		b.Bold(false)
	}
	w.rule()
	b.Bold(true).Size(2, 2)
	if w.width(amount)*2 > p.Columns {
		b.Size(1, 2)
	}
	w.line(amount)
	b.Size(1, 1).Bold(false).LF()
	// The largest module size that fits the paper, up to 8 dots.
	mat, err := escpos.QRMatrix([]byte(m.Payload), escpos.QRLevelM)
	if err != nil {
		return nil, fmt.Errorf("printer: merchant QR: %w", err)
	}
	module := min(8, max(1, (p.WidthDots-32)/(len(mat)+8)))
	if p.NativeQR {
		b.QR([]byte(m.Payload), byte(module), escpos.QRLevelM)
	} else {
		b.QRRaster([]byte(m.Payload), byte(module), escpos.QRLevelM)
	}
	b.LF()
	for _, l := range w.wrap(scanPrompt[lang], p.Columns) {
		w.line(l)
	}
	if m.SaleID != "" {
		b.FontB(true)
		w.line(lb.sale + " " + m.SaleID)
		b.FontB(false)
	}
	b.Align(escpos.Left)
	w.finish(false)
	return b.Bytes()
}
