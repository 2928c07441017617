package printer

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/width"

	"github.com/walletless/walletless/printer/escpos"
)

// Receipt is what the payment engine hands over for one sale.
type Receipt struct {
	Header      []string  // merchant name / address lines from config
	SaleID      string    // printed and encoded in the QR for refunds
	Time        time.Time // printed in this time's location
	AmountMinor int64     // int64 minor units, never float
	Currency    string    // ISO 4217 alpha, e.g. "KRW"
	Scheme      string    // e.g. "alipay"
	Operator    string    // e.g. "Alipay+"
	MaskedCode  string    // already masked; printed as given
	Status      string    // "approved", "declined", "stored_offline", "cancelled", ...
	Reason      string    // decline reason, may be empty
	Language    string    // "en" (default), "ko", "ja", "zh"
	Footer      []string  // optional closing lines ("Thank you")
}

// labels are the receipt's words in one language.
type labels struct {
	date, sale, scheme, operator, code, total, reason, refund string
	status                                                    map[string]string
}

var languages = map[string]labels{
	"en": {
		date: "Date", sale: "Sale", scheme: "Scheme", operator: "Operator", code: "Code",
		total: "TOTAL", reason: "Reason", refund: "Sale ID for refunds",
		status: map[string]string{
			"approved": "APPROVED", "declined": "DECLINED", "stored_offline": "STORED OFFLINE - PENDING",
			"cancelled": "CANCELLED", "in_doubt": "IN DOUBT - CHECKING", "reversed": "REVERSED",
			"refunded": "REFUNDED",
		},
	},
	"ko": {
		date: "일시", sale: "거래번호", scheme: "결제수단", operator: "결제사", code: "코드",
		total: "합계", reason: "사유", refund: "환불 시 거래번호",
		status: map[string]string{
			"approved": "승인", "declined": "거절", "stored_offline": "오프라인 저장 - 처리 대기",
			"cancelled": "취소", "in_doubt": "확인 중", "reversed": "승인 취소", "refunded": "환불",
		},
	},
	"ja": {
		date: "日時", sale: "取引番号", scheme: "決済方法", operator: "事業者", code: "コード",
		total: "合計", reason: "理由", refund: "返金用取引番号",
		status: map[string]string{
			"approved": "承認", "declined": "拒否", "stored_offline": "オフライン保存 - 処理待ち",
			"cancelled": "取消", "in_doubt": "確認中", "reversed": "取消済", "refunded": "返金済",
		},
	},
	"zh": {
		date: "日期", sale: "交易号", scheme: "支付方式", operator: "运营方", code: "付款码",
		total: "合计", reason: "原因", refund: "退款凭交易号",
		status: map[string]string{
			"approved": "交易成功", "declined": "交易拒绝", "stored_offline": "离线保存 - 待处理",
			"cancelled": "已取消", "in_doubt": "确认中", "reversed": "已冲正", "refunded": "已退款",
		},
	},
}

// Languages lists the receipt languages.
func Languages() []string { return []string{"en", "ja", "ko", "zh"} }

// EncodeReceipt lays out r for a printer of profile p and returns the ESC/POS bytes:
// header, date, sale, scheme, operator, masked code, total, status, a QR of the sale
// id, and a cut when the profile has a cutter.
func EncodeReceipt(r Receipt, p Profile) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	lang := r.Language
	if lang == "" {
		lang = "en"
	}
	lb, ok := languages[lang]
	if !ok {
		return nil, fmt.Errorf("printer: unknown receipt language %q", r.Language)
	}
	if r.SaleID == "" {
		return nil, fmt.Errorf("printer: receipt without sale id")
	}
	w := newWriter(p)
	amount, err := w.amount(r.AmountMinor, r.Currency)
	if err != nil {
		return nil, err
	}
	b := w.b
	b.Align(escpos.Center)
	for i, h := range r.Header {
		if i == 0 && w.width(h)*2 <= p.Columns {
			b.Bold(true).Size(2, 2)
			w.line(h)
			b.Bold(false).Size(1, 1)
			continue
		}
		for _, l := range w.wrap(h, p.Columns) {
			w.line(l)
		}
	}
	b.Align(escpos.Left)
	w.rule()
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	w.field(lb.date, ts.Format("2006-01-02 15:04:05 MST"))
	w.field(lb.sale, r.SaleID)
	if r.Scheme != "" {
		w.field(lb.scheme, r.Scheme)
	}
	if r.Operator != "" {
		w.field(lb.operator, r.Operator)
	}
	if r.MaskedCode != "" {
		w.field(lb.code, r.MaskedCode)
	}
	w.rule()
	// Total: bold, double height, label left and amount right.
	b.Bold(true).Size(1, 2)
	w.line(w.spread(lb.total, amount, p.Columns))
	b.Size(1, 1).Bold(false)
	w.rule()

	status := lb.status[r.Status]
	if status == "" {
		status = strings.ToUpper(strings.ReplaceAll(r.Status, "_", " "))
	}
	b.Align(escpos.Center).Bold(true)
	if r.Status == "declined" || r.Status == "cancelled" {
		b.Inverse(true)
	}
	if w.width(status)*2 <= p.Columns {
		b.Size(2, 2)
	} else {
		b.Size(1, 2)
	}
	w.line(" " + status + " ")
	b.Size(1, 1).Inverse(false).Bold(false)
	if r.Reason != "" {
		for _, l := range w.wrap(lb.reason+": "+r.Reason, p.Columns) {
			w.line(l)
		}
	}
	b.LF()
	if p.NativeQR {
		b.QR([]byte(r.SaleID), byte(p.QRModule), escpos.QRLevelM)
	} else {
		b.QRRaster([]byte(r.SaleID), byte(p.QRModule), escpos.QRLevelM)
	}
	b.LF()
	b.FontB(true)
	w.line(lb.refund)
	b.FontB(false)
	w.line(r.SaleID)
	for _, f := range r.Footer {
		for _, l := range w.wrap(f, p.Columns) {
			w.line(l)
		}
	}
	b.Align(escpos.Left)
	w.finish(r.Status == "approved")
	return b.Bytes()
}

// writer encodes receipt text for one profile.
type writer struct {
	p      Profile
	b      *escpos.Builder
	single encoding.Encoding // the code table
	multi  encoding.Encoding // the Kanji/Hangul/Chinese mode, or nil
}

func newWriter(p Profile) *writer {
	w := &writer{
		p:      p,
		b:      escpos.New(),
		single: escpos.CodeTableEncoding(byte(p.CodeTable)),
		multi:  escpos.MultibyteEncoding(p.CJKEncoding),
	}
	w.b.CodeTable(byte(p.CodeTable))
	if p.CJKEncoding == escpos.MultibyteShiftJIS {
		// Japanese models read Kanji as JIS unless told Shift_JIS (FS C 1).
		w.b.Raw([]byte{escpos.FS, 'C', 1})
	}
	return w
}

// finish feeds the paper past the cutter, cuts and kicks the drawer.
func (w *writer) finish(approved bool) {
	switch w.p.Cut {
	case CutPartial:
		w.b.Feed(3).Cut(true, 0)
	case CutFull:
		w.b.Feed(3).Cut(false, 0)
	default:
		w.b.Feed(4)
	}
	if approved && w.p.DrawerKick {
		w.b.DrawerKick(false, 25, 250)
	}
}

// asciiFallback spells punctuation that a code page may lack in plain ASCII.
var asciiFallback = map[rune]string{
	'…': "...", '–': "-", '—': "-", '‘': "'", '’': "'", '“': "\"", '”': "\"", '•': "*", '·': ".",
}

// text appends s: runs the code table can print go as single bytes, the rest through
// the multibyte mode when the profile has one, and anything else as '?'.
func (w *writer) text(s string) {
	var run strings.Builder
	inMulti := false
	flush := func() {
		if run.Len() == 0 {
			return
		}
		enc := w.single
		if inMulti {
			enc = w.multi
		}
		p, err := escpos.EncodeText(run.String(), enc)
		if err != nil {
			p = []byte(strings.Repeat("?", utf8.RuneCountInString(run.String())))
		}
		if inMulti {
			w.b.Kanji(true).Text(p).Kanji(false)
		} else {
			w.b.Text(p)
		}
		run.Reset()
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			// Text from config or a wallet never becomes a printer command.
			r = '?'
		}
		rs := string(r)
		multi := false
		switch {
		case r < 0x80 || escpos.CanEncode(rs, w.single):
		case w.multi != nil && escpos.CanEncode(rs, w.multi):
			multi = true
		default:
			rs = "?"
			if alt, ok := asciiFallback[r]; ok {
				rs = alt // e.g. the ellipsis of a masked code on a code page without one
			}
		}
		if multi != inMulti {
			flush()
			inMulti = multi
		}
		run.WriteString(rs)
	}
	flush()
}

func (w *writer) line(s string) {
	w.text(s)
	w.b.LF()
}

func (w *writer) rule() { w.line(strings.Repeat("-", w.p.Columns)) }

// field prints "Label      value", wrapping a long value under itself.
func (w *writer) field(label, value string) {
	labelCols := 10
	if w.p.Columns < 40 {
		labelCols = 9
	}
	lw := max(labelCols, w.width(label)+1)
	lines := w.wrap(value, w.p.Columns-lw)
	for i, l := range lines {
		prefix := strings.Repeat(" ", lw)
		if i == 0 {
			prefix = label + strings.Repeat(" ", lw-w.width(label))
		}
		w.line(prefix + l)
	}
}

// spread puts left and right on one line of cols columns.
func (w *writer) spread(left, right string, cols int) string {
	gap := cols - w.width(left) - w.width(right)
	if gap < 1 {
		return left + " " + right
	}
	return left + strings.Repeat(" ", gap) + right
}

// amount formats an amount with the currency symbol when the printer can print it,
// else with the ISO code.
func (w *writer) amount(minor int64, cur string) (string, error) {
	s, err := FormatAmount(minor, cur)
	if err != nil {
		return "", err
	}
	if w.printable(s) {
		return s, nil
	}
	// Multibyte sets have the full-width won and yen signs.
	if fw := strings.NewReplacer("₩", "￦", "¥", "￥").Replace(s); w.printable(fw) {
		return fw, nil
	}
	return FormatAmountCode(minor, cur)
}

// printable reports whether every character of s reaches paper as itself.
func (w *writer) printable(s string) bool {
	for _, r := range s {
		rs := string(r)
		if r < 0x80 || escpos.CanEncode(rs, w.single) || (w.multi != nil && escpos.CanEncode(rs, w.multi)) {
			continue
		}
		return false
	}
	return true
}

// width is the number of font A columns s takes: East Asian wide characters take two.
func (w *writer) width(s string) int { return textWidth(s) }

func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// wrap splits s into lines of at most cols columns, at spaces where it can.
func (w *writer) wrap(s string, cols int) []string {
	if cols < 1 {
		cols = 1
	}
	var lines []string
	for textWidth(s) > cols {
		cut, n, lastSpace := 0, 0, -1
		for i, r := range s {
			rw := runeWidth(r)
			if n+rw > cols {
				cut = i
				break
			}
			if r == ' ' {
				lastSpace = i
			}
			n += rw
		}
		switch {
		case lastSpace > 0:
			lines = append(lines, s[:lastSpace])
			s = s[lastSpace+1:]
		case cut > 0:
			lines = append(lines, s[:cut])
			s = s[cut:]
		default: // a character wider than the line: give it a line of its own
			_, n := utf8.DecodeRuneInString(s)
			lines = append(lines, s[:n])
			s = s[n:]
		}
	}
	return append(lines, s)
}
