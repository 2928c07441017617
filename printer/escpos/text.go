package escpos

import (
	"fmt"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// CodeTableEncoding returns the single-byte encoding of an ESC t code table, or nil
// when the table is not known.
func CodeTableEncoding(table byte) encoding.Encoding {
	switch table {
	case CodeTablePC437:
		return charmap.CodePage437
	case CodeTablePC850:
		return charmap.CodePage850
	case CodeTablePC860:
		return charmap.CodePage860
	case CodeTablePC863:
		return charmap.CodePage863
	case CodeTablePC865:
		return charmap.CodePage865
	case CodeTableWPC1252:
		return charmap.Windows1252
	case CodeTablePC866:
		return charmap.CodePage866
	case CodeTablePC852:
		return charmap.CodePage852
	case CodeTablePC858:
		return charmap.CodePage858
	}
	return nil
}

// Multibyte encodings for the Kanji/Hangul/Chinese mode (FS &).
const (
	MultibyteNone     = ""
	MultibyteShiftJIS = "shift_jis"
	MultibyteEUCKR    = "euc-kr"
	MultibyteGB18030  = "gb18030"
	MultibyteBig5     = "big5"
)

// MultibyteEncoding returns the encoding named by one of the Multibyte constants, or
// nil for MultibyteNone or an unknown name.
func MultibyteEncoding(name string) encoding.Encoding {
	switch name {
	case MultibyteShiftJIS:
		return japanese.ShiftJIS
	case MultibyteEUCKR:
		return korean.EUCKR
	case MultibyteGB18030:
		return simplifiedchinese.GB18030
	case MultibyteBig5:
		return traditionalchinese.Big5
	}
	return nil
}

// EncodeText encodes s with enc. Characters enc cannot represent are an error
// wrapping ErrInvalid; use [CanEncode] to choose a fallback first.
func EncodeText(s string, enc encoding.Encoding) ([]byte, error) {
	if enc == nil {
		return nil, fmt.Errorf("%w: no encoding", ErrInvalid)
	}
	p, err := enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: text not representable: %w", ErrInvalid, err)
	}
	return p, nil
}

// CanEncode reports whether enc represents every character of s.
func CanEncode(s string, enc encoding.Encoding) bool {
	_, err := EncodeText(s, enc)
	return err == nil
}
