// Portions follow ZXing's qrcode/decoder (Copyright 2007 ZXing authors) and its Go
// port gozxing (Copyright 2019 makiuchi-d), both under the Apache License 2.0.

package scanner

import (
	"unicode/utf8"

	"github.com/makiuchi-d/gozxing"
	qrdecoder "github.com/makiuchi-d/gozxing/qrcode/decoder"
)

// The fast QR decode of a module grid, without allocation: the common case of a
// camera at a counter is a clean code, read from a sampled grid without a module
// wrong, in numeric, alphanumeric or byte segments of ASCII or UTF-8 text. gozxing's QR decoder
// allocates for every step (the parser, data blocks, Reed-Solomon polynomials, the
// result), about 16-40 times a frame. fastQR reads the format information, the
// codewords (unmasked as they are read) and the data blocks into reused buffers,
// corrects each block with Reed-Solomon (refusing a block that is not a codeword
// after it), and parses the segments. Anything else (a mirrored code, ECI, Kanji,
// FNC1, structured append, bytes that are not UTF-8 and whose character set must be
// guessed)
// returns false, and gozxing's decoder reads the same grid as before: fastQR never
// reads what gozxing would not, only sooner. It follows ZXing's BitMatrixParser,
// DataBlock and DecodedBitStreamParser (Apache License 2.0, as gozxing).

// qrFast is the state of the fast decode, reused from frame to frame.
type qrFast struct {
	funcs [41]*gozxing.BitMatrix // function patterns per version, built once
	raw   []byte                 // codewords in reading order
	block []byte                 // one data block, deinterleaved
	data  []byte                 // the data codewords of all blocks
	text  []byte                 // the decoded text
	last  string                 // the last text returned (a repeat costs no string)
}

// gf256 is GF(256) with QR's primitive polynomial 0x11d: exp and log tables.
var gfExp, gfLog = func() (e [512]byte, l [256]byte) {
	x := 1
	for i := 0; i < 255; i++ {
		e[i], e[i+255] = byte(x), byte(x)
		l[x] = byte(i)
		x <<= 1
		if x >= 256 {
			x ^= 0x11d
		}
	}
	return
}()

// formatCodes are the 32 valid format information words (after the mask 0x5412),
// indexed by their 5 data bits: error correction level and data mask.
var formatCodes = func() (c [32]int) {
	for d := range c {
		v := d << 10
		for b := 14; b >= 10; b-- { // BCH(15, 5), generator 0x537
			if v&(1<<b) != 0 {
				v ^= 0x537 << (b - 10)
			}
		}
		c[d] = (d<<10 | v) ^ 0x5412
	}
	return
}()

// decodeFormat returns the 5 data bits of the format word nearest to one of the two
// copies read, within 3 bits as ZXing allows, or -1.
func decodeFormat(a, b int) int {
	best, bestD := -1, 4
	for d, c := range formatCodes {
		for _, v := range [2]int{a, b} {
			if n := popcount(uint32(v ^ c)); n < bestD {
				best, bestD = d, n
			}
		}
	}
	return best
}

func popcount(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// masked reports whether data mask m flips the module at row i, column j.
func masked(m, i, j int) bool {
	switch m {
	case 0:
		return (i+j)&1 == 0
	case 1:
		return i&1 == 0
	case 2:
		return j%3 == 0
	case 3:
		return (i+j)%3 == 0
	case 4:
		return ((i/2)+(j/3))&1 == 0
	case 5:
		return (i*j)%6 == 0
	case 6:
		return ((i*j)&1+(i*j)%3)&1 == 0
	default:
		return (((i+j)&1)+(i*j)%3)&1 == 0
	}
}

// functionPattern returns the modules of version v that hold no data (ZXing's
// Version.buildFunctionPattern), built once per version.
func (q *qrFast) functionPattern(v *qrdecoder.Version) *gozxing.BitMatrix {
	n := v.GetVersionNumber()
	if q.funcs[n] != nil {
		return q.funcs[n]
	}
	dim := v.GetDimensionForVersion()
	m, _ := gozxing.NewSquareBitMatrix(dim)
	m.SetRegion(0, 0, 9, 9)
	m.SetRegion(dim-8, 0, 8, 9)
	m.SetRegion(0, dim-8, 9, 8)
	c := v.GetAlignmentPatternCenters()
	k := len(c)
	for x := 0; x < k; x++ {
		i := c[x] - 2
		for y := 0; y < k; y++ {
			if (x != 0 || (y != 0 && y != k-1)) && (x != k-1 || y != 0) {
				m.SetRegion(c[y]-2, i, 5, 5)
			}
		}
	}
	m.SetRegion(6, 9, 1, dim-17)
	m.SetRegion(9, 6, dim-17, 1)
	if n > 6 {
		m.SetRegion(dim-11, 0, 3, 6)
		m.SetRegion(0, dim-11, 6, 3)
	}
	q.funcs[n] = m
	return m
}

// decode reads the grid bits (dim x dim); false when it cannot without help.
func (q *qrFast) decode(bits *gozxing.BitMatrix) (string, bool) {
	dim := bits.GetWidth()
	if dim < 21 || dim > 177 || dim%4 != 1 || bits.GetHeight() != dim {
		return "", false
	}
	ver, err := qrdecoder.Version_GetVersionForNumber((dim - 17) / 4)
	if err != nil {
		return "", false
	}
	// format information: two copies (ZXing's readFormatInformation)
	bit := func(i, j, v int) int {
		if bits.Get(i, j) {
			return v<<1 | 1
		}
		return v << 1
	}
	f1 := 0
	for i := 0; i < 6; i++ {
		f1 = bit(i, 8, f1)
	}
	f1 = bit(7, 8, f1)
	f1 = bit(8, 8, f1)
	f1 = bit(8, 7, f1)
	for j := 5; j >= 0; j-- {
		f1 = bit(8, j, f1)
	}
	f2 := 0
	for j := dim - 1; j >= dim-7; j-- {
		f2 = bit(8, j, f2)
	}
	for i := dim - 8; i < dim; i++ {
		f2 = bit(i, 8, f2)
	}
	format := decodeFormat(f1, f2)
	if format < 0 {
		return "", false
	}
	level, err := qrdecoder.ErrorCorrectionLevel_ForBits(uint(format >> 3))
	if err != nil {
		return "", false
	}
	mask := format & 7
	// codewords, two columns at a time from the right, up and down
	fp := q.functionPattern(ver)
	total := ver.GetTotalCodewords()
	if cap(q.raw) < total {
		q.raw = make([]byte, total)
		q.block = make([]byte, total)
		q.data = make([]byte, total)
		q.text = make([]byte, 0, 8*total)
	}
	raw := q.raw[:total]
	n, cur, nbits := 0, 0, 0
	up := true
	for j := dim - 1; j > 0; j -= 2 {
		if j == 6 {
			j--
		}
		for count := 0; count < dim; count++ {
			i := count
			if up {
				i = dim - 1 - count
			}
			for col := 0; col < 2; col++ {
				x := j - col
				if fp.Get(x, i) {
					continue
				}
				cur <<= 1
				if bits.Get(x, i) != masked(mask, i, x) {
					cur |= 1
				}
				if nbits++; nbits == 8 {
					if n == total {
						return "", false
					}
					raw[n], n, cur, nbits = byte(cur), n+1, 0, 0
				}
			}
		}
		up = !up
	}
	if n != total {
		return "", false
	}
	// data blocks (ZXing's DataBlock.getDataBlocks): data codewords interleaved
	// across blocks, then the error correction codewords; the last blocks may hold
	// one data codeword more
	ecb := ver.GetECBlocksForLevel(level)
	ecPer := ecb.GetECCodewordsPerBlock()
	nblocks, shortData := 0, 0
	for _, e := range ecb.GetECBlocks() {
		if nblocks == 0 {
			shortData = e.GetDataCodewords()
		}
		nblocks += e.GetCount()
	}
	if nblocks == 0 {
		return "", false
	}
	longAt := nblocks // first block with shortData+1 data codewords
	{
		b := 0
		for _, e := range ecb.GetECBlocks() {
			if e.GetDataCodewords() != shortData && longAt == nblocks {
				longAt = b
			}
			b += e.GetCount()
		}
	}
	data := q.data[:0]
	for b := 0; b < nblocks; b++ {
		nd := shortData
		if b >= longAt {
			nd++
		}
		blk := q.block[:nd+ecPer]
		// codeword k of block b in the interleaved stream
		for k := range blk {
			var off int
			switch {
			case k < shortData:
				off = k*nblocks + b
			case k == shortData && b >= longAt: // the extra data codeword
				off = shortData*nblocks + (b - longAt)
			default: // error correction codeword e
				e := k - nd
				off = shortData*nblocks + (nblocks - longAt) + e*nblocks + b
			}
			if off >= total {
				return "", false
			}
			blk[k] = raw[off]
		}
		if !rsCorrect(blk, ecPer) {
			return "", false
		}
		data = append(data, blk[:nd]...)
	}
	q.data = data
	text, ok := parseQRSegments(data, ver.GetVersionNumber(), q.text[:0])
	if !ok {
		return "", false
	}
	q.text = text
	if string(text) != q.last {
		q.last = string(text)
	}
	return q.last, true
}

// syndromes computes the ecPer syndromes of a block (its polynomial, first codeword
// the highest power, at alpha^0 .. alpha^(ecPer-1)) and reports whether all are 0.
func syndromes(blk []byte, ecPer int, syn *[qrMaxEC]byte) bool {
	zero := true
	for s := 0; s < ecPer; s++ {
		var acc byte
		for _, c := range blk {
			acc = gfMul(acc, gfExp[s]) ^ c
		}
		syn[s] = acc
		zero = zero && acc == 0
	}
	return zero
}

// qrMaxEC bounds the error correction codewords of one QR block (30 in the standard).
const qrMaxEC = 64

// rsCorrect corrects up to ecPer/2 wrong codewords of a block in place
// (Berlekamp-Massey, Chien search, Forney; QR's generator starts at alpha^0) and
// reports whether the block is a codeword now: the syndromes are computed again
// after a correction, so a block with too many errors is refused, never "corrected"
// into another. Nothing is changed when it returns false.
func rsCorrect(blk []byte, ecPer int) bool {
	var syn [qrMaxEC]byte
	if ecPer <= 0 || ecPer > qrMaxEC || len(blk) > 255 {
		return false
	}
	if syndromes(blk, ecPer, &syn) {
		return true
	}
	// Berlekamp-Massey: the error locator c (c[0] = 1) of degree l
	var c, b, t [qrMaxEC + 1]byte
	c[0], b[0] = 1, 1
	l, m, bd := 0, 1, byte(1)
	for n := 0; n < ecPer; n++ {
		d := syn[n]
		for i := 1; i <= l; i++ {
			d ^= gfMul(c[i], syn[n-i])
		}
		if d == 0 {
			m++
			continue
		}
		coef := gfDiv(d, bd)
		if 2*l <= n {
			t = c
			for i := 0; i+m <= qrMaxEC; i++ {
				c[i+m] ^= gfMul(coef, b[i])
			}
			l, b, bd, m = n+1-l, t, d, 1
		} else {
			for i := 0; i+m <= qrMaxEC; i++ {
				c[i+m] ^= gfMul(coef, b[i])
			}
			m++
		}
	}
	if l == 0 || 2*l > ecPer {
		return false
	}
	// the error evaluator omega = syn * c mod x^ecPer
	var omega [qrMaxEC]byte
	for i := 0; i < ecPer; i++ {
		var v byte
		for j := 0; j <= min(i, l); j++ {
			v ^= gfMul(c[j], syn[i-j])
		}
		omega[i] = v
	}
	// Chien search over the block's positions, then Forney's error values; the
	// corrections are kept aside until all are known
	n := len(blk)
	var pos [qrMaxEC]int
	var val [qrMaxEC]byte
	found := 0
	for k := 0; k < n; k++ {
		e := n - 1 - k                 // the power of x of codeword k
		xinv := gfExp[(255-e%255)%255] // X^-1 = alpha^-e
		if gfPoly(c[:l+1], xinv) != 0 {
			continue
		}
		if found == l {
			return false
		}
		// c'(x): the odd terms, a power lower
		var den byte
		for i := 1; i <= l; i += 2 {
			den ^= gfMul(c[i], gfPow(xinv, i-1))
		}
		if den == 0 {
			return false
		}
		num := gfPoly(omega[:ecPer], xinv)
		pos[found], val[found] = k, gfMul(gfExp[e%255], gfDiv(num, den))
		found++
	}
	if found != l {
		return false
	}
	for i := 0; i < found; i++ {
		blk[pos[i]] ^= val[i]
	}
	if !syndromes(blk, ecPer, &syn) {
		for i := 0; i < found; i++ { // as it was
			blk[pos[i]] ^= val[i]
		}
		return false
	}
	return true
}

// gfPoly evaluates the polynomial p (p[0] the constant term) at x.
func gfPoly(p []byte, x byte) byte {
	var v byte
	for i := len(p) - 1; i >= 0; i-- {
		v = gfMul(v, x) ^ p[i]
	}
	return v
}

// gfPow is x to the power n in GF(256).
func gfPow(x byte, n int) byte {
	if n == 0 {
		return 1
	}
	if x == 0 {
		return 0
	}
	return gfExp[(int(gfLog[x])*n)%255]
}

// gfDiv divides in GF(256); b is not 0.
func gfDiv(a, b byte) byte {
	if a == 0 {
		return 0
	}
	return gfExp[(int(gfLog[a])+255-int(gfLog[b]))%255]
}

// gfMul multiplies in GF(256).
func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

const qrAlnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

// parseQRSegments appends the text of the numeric, alphanumeric and UTF-8 byte
// segments of data to out; false for any other mode or a malformed segment.
func parseQRSegments(data []byte, version int, out []byte) ([]byte, bool) {
	pos, nbits := 0, len(data)*8
	read := func(n int) (int, bool) {
		if n > nbits-pos {
			return 0, false
		}
		v := 0
		for k := 0; k < n; k++ {
			v = v<<1 | int(data[(pos+k)>>3]>>(7-(pos+k)&7))&1
		}
		pos += n
		return v, true
	}
	size := 0 // character count field lengths: versions 1-9, 10-26, 27-40
	if version > 26 {
		size = 2
	} else if version > 9 {
		size = 1
	}
	for {
		if nbits-pos < 4 {
			return out, true // fewer than 4 bits left: the terminator
		}
		mode, _ := read(4)
		switch mode {
		case 0: // terminator
			return out, true
		case 1: // numeric
			count, ok := read([3]int{10, 12, 14}[size])
			if !ok {
				return nil, false
			}
			for count >= 3 {
				v, ok := read(10)
				if !ok || v >= 1000 {
					return nil, false
				}
				out = append(out, byte('0'+v/100), byte('0'+v/10%10), byte('0'+v%10))
				count -= 3
			}
			if count == 2 {
				v, ok := read(7)
				if !ok || v >= 100 {
					return nil, false
				}
				out = append(out, byte('0'+v/10), byte('0'+v%10))
			} else if count == 1 {
				v, ok := read(4)
				if !ok || v >= 10 {
					return nil, false
				}
				out = append(out, byte('0'+v))
			}
		case 2: // alphanumeric
			count, ok := read([3]int{9, 11, 13}[size])
			if !ok {
				return nil, false
			}
			for count >= 2 {
				v, ok := read(11)
				if !ok || v >= 45*45 {
					return nil, false
				}
				out = append(out, qrAlnum[v/45], qrAlnum[v%45])
				count -= 2
			}
			if count == 1 {
				v, ok := read(6)
				if !ok || v >= 45 {
					return nil, false
				}
				out = append(out, qrAlnum[v])
			}
		case 4: // bytes: ASCII or valid UTF-8, which gozxing's guess takes as such
			count, ok := read([3]int{8, 16, 16}[size])
			if !ok || count*8 > nbits-pos {
				return nil, false
			}
			from := len(out)
			for ; count > 0; count-- {
				v, _ := read(8)
				out = append(out, byte(v))
			}
			// without an ECI, gozxing guesses the character set: text with a
			// multi-byte UTF-8 character and nothing invalid is UTF-8 (its first
			// rule), ASCII is ISO-8859-1; anything else is left to it
			if !utf8.Valid(out[from:]) {
				return nil, false
			}
		default:
			return nil, false
		}
	}
}
