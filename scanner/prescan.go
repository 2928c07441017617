package scanner

import (
	"encoding/binary"
	"math"
)

// The pre-check: a camera at a counter sees an empty frame 15-30 times a second, and
// gozxing spends tens of milliseconds on each before it gives up. prescan looks for
// the one thing every readable code has, cheaply, and the decoder only runs when it
// finds one:
//   - a QR finder pattern: runs of 1:1:3:1:1 along a row (either polarity), confirmed
//     through the same centre vertically and along both diagonals with extents that
//     fit a square (a finder seen at any angle), which stripes and noise do not;
//   - a Code 128 start pattern (or a stop pattern read backwards, for a code held
//     upside down) after a quiet zone, on rows and, for codes held upright, columns;
//   - with EAN-13 on, an EAN guard (1:1:1 after a quiet zone) followed by bars.
// Thresholds are local: the mean of 3x3 blocks of 16x16 pixels around a pixel, and
// blocks with almost no contrast count as blank (no edges in them): less than 18 grey
// levels, or more on a noisy frame (noiseLimit).

const (
	psBlock    = 16 // block side in pixels (a power of two: psShift)
	psShift    = 4
	psMinRange = 18 // grey levels: a neighbourhood flatter than this has no edges (zxing: 24, which loses the 17-level codes of hard-*-lowcontr17 that zbar reads)
	psMaxRange = 48 // the most a noisy frame raises that limit to (noiseLimit)
	// psNoiseMargin is how far above a noisy frame's plain neighbourhoods the limit is
	psNoiseMargin = 8
	psRowStep     = 3 // rows scanned for finder and start patterns
	psColStep     = 8 // columns scanned for upright 1D codes
	// psMinFinder is the smallest finder pattern looked for, in pixels: 7 modules of
	// 1.5 pixels (smaller is below what a camera can resolve, and noise is finer).
	psMinFinder = 11
)

// prescanner holds the buffers of the pre-check, reused from frame to frame.
type prescanner struct {
	g      Gray
	stride int
	bw, bh int
	sum    []int32 // per block: sum, min, max of the sampled pixels
	lo, hi []uint8
	thr    []uint8 // per block threshold; 0 = blank
	rng    []uint8 // per block contrast: max - min over the 3x3 blocks
	// block rows of this frame with statistics (sum, lo, hi) and with thresholds
	// (thr, rng) computed: the scan computes them as it goes down the frame
	sumRows, thrRows int
	colSum           []int32 // blockThresholds' columns of three blocks: sum, min, max
	colLo, colHi     []uint8
	minRange         int // this frame's flat-block limit: psMinRange, or more on a noisy frame (noiseLimit)
	ean              bool
	no1D             bool           // look for QR finder patterns only
	noQR             bool           // look for 1D codes only
	skip             [4][3]psFinder // finder triples already tried on this frame
	nskip            int
	finds            [32]psFinder // finder patterns confirmed in this frame
	nfind            int
	found            string // what the last codeLike found: "finder", "row-1d", "col-1d", "ean"
	// where: the three finders, or the line (row or column) and module size x16
	tri      [3]psFinder
	line     int
	lineM16  int32
	lineRow  bool // the line is a row (else a column)
	lineFrom int  // where the start pattern begins on the line
}

// codeLike reports whether g shows a QR finder pattern or a 1D start pattern. It
// starts a new frame: the block thresholds are computed afresh, as far down the
// frame as the scan goes.
func (p *prescanner) codeLike(g Gray, ean bool) bool {
	p.g, p.stride, p.ean = g, g.stride(), ean
	p.bw, p.bh = (g.Width+psBlock-1)>>psShift, (g.Height+psBlock-1)>>psShift
	n := p.bw * p.bh
	if cap(p.sum) < n {
		p.sum, p.lo, p.hi, p.thr, p.rng = make([]int32, n), make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n)
	}
	p.sum, p.lo, p.hi, p.thr, p.rng = p.sum[:n], p.lo[:n], p.hi[:n], p.thr[:n], p.rng[:n]
	if cap(p.colSum) < p.bw {
		p.colSum, p.colLo, p.colHi = make([]int32, p.bw), make([]uint8, p.bw), make([]uint8, p.bw)
	}
	p.sumRows, p.thrRows = 0, 0
	p.minRange = p.noiseLimit()
	return p.codeLikeAgain()
}

// noiseLimit measures the frame's noise floor and returns the flat-block limit for
// it. A camera's noise of ±8 grey levels spans 16 levels and more in every
// neighbourhood of a plain background, and with the light's gradient passes a fixed
// limit of psMinRange: runs of one or two pixels everywhere, each checked for
// patterns (and each a branch the processor cannot predict). The floor is the
// contrast (on every fourth row) of the quietest eighth of a sample of 3x3-block
// neighbourhoods (about 48, spread over the frame): on a frame with any
// background, or a code of modules wider than a few pixels, those are plain. The
// limit is psNoiseMargin above it: an edge stands out of the noise by that much. It
// stays at psMinRange on a clean frame (the 17-level codes) and never passes
// psMaxRange (a frame filled by small modules has no plain neighbourhood, and its
// contrast is not noise).
func (p *prescanner) noiseLimit() int {
	var hist [256]uint16
	n := 0
	g := p.g
	step := max(4, int(math.Sqrt(float64(p.bw*p.bh/48))))
	for by := 1; (by+2)<<psShift <= g.Height; by += step {
		for bx := 1; (bx+2)<<psShift <= g.Width; bx += step {
			// the 48x48 pixels of blocks bx-1..bx+1, by-1..by+1, every fourth row
			his, los := uint64(0), ^uint64(0)
			off := ((by-1)<<psShift)*p.stride + (bx-1)<<psShift
			for y := 0; y < 3*psBlock; y += 4 {
				r := (*[3 * psBlock]byte)(g.Pix[off+y*p.stride : off+y*p.stride+3*psBlock])
				for k := 0; k < len(r); k += 16 {
					mx, mn := maxMinBytes(binary.LittleEndian.Uint64(r[k:k+8]), binary.LittleEndian.Uint64(r[k+8:k+16]))
					his, _ = maxMinBytes(his, mx)
					_, los = maxMinBytes(los, mn)
				}
			}
			lo, hi := foldMinMax(los, his)
			hist[hi-lo]++
			n++
		}
	}
	floor, seen := 0, 0
	for r, c := range hist {
		seen += int(c)
		if seen*8 >= n {
			floor = r
			break
		}
	}
	return min(max(psMinRange, floor+psNoiseMargin), psMaxRange)
}

// codeLikeAgain looks at the frame of the last codeLike again (after skipTriple or
// no1D), with the thresholds computed so far.
func (p *prescanner) codeLikeAgain() bool {
	p.found, p.nfind = "", 0
	g := p.g
	for y := 1; y < g.Height; y += psRowStep {
		p.ensure((y + 2) >> psShift) // tall looks two rows down
		if p.scanRow(y) {
			return true
		}
	}
	p.ensure(p.bh - 1)
	for x := psColStep / 2; x < g.Width && !p.no1D; x += psColStep {
		if p.scanCol(x) {
			return true
		}
	}
	return false
}

// ensure computes the thresholds of the block rows down to by (and the block
// statistics one row further, for the 3x3 means), unless done on this frame.
func (p *prescanner) ensure(by int) {
	by = min(by, p.bh-1)
	for ; p.sumRows <= min(by+1, p.bh-1); p.sumRows++ {
		p.blockStats(p.sumRows)
	}
	for ; p.thrRows <= by; p.thrRows++ {
		p.blockThresholds(p.thrRows)
	}
}

// blockStats computes the mean, minimum and maximum of each block of block row by,
// from every other pixel row. Whole blocks take eight bytes at a time (blockStats16).
func (p *prescanner) blockStats(by int) {
	g := p.g
	y0, y1 := by<<psShift, min((by+1)<<psShift, g.Height)
	for bx := 0; bx < p.bw; bx++ {
		x0, x1 := bx<<psShift, min((bx+1)<<psShift, g.Width)
		i := by*p.bw + bx
		if y1-y0 == psBlock && x1-x0 == psBlock {
			p.sum[i], p.lo[i], p.hi[i] = blockStats16(g.Pix[y0*p.stride+x0:], p.stride)
			continue
		}
		var s int32
		lo, hi := uint8(255), uint8(0)
		for y := y0; y < y1; y += 2 {
			row := g.Pix[y*p.stride+x0 : y*p.stride+x1]
			for _, v := range row {
				s += int32(v)
				lo = min(lo, v)
				hi = max(hi, v)
			}
		}
		k := int32(((y1 - y0 + 1) / 2) * (x1 - x0))
		p.sum[i] = s / k
		p.lo[i], p.hi[i] = lo, hi
	}
}

// blockStats16 is blockStats of the 16x16 block at pix[0] (rows stride apart): the
// mean, minimum and maximum of its even rows, eight pixels to a 64-bit word.
func blockStats16(pix []byte, stride int) (mean int32, lo, hi uint8) {
	const m = 0x00ff00ff00ff00ff
	var acc uint64 // four 16-bit sums: 8 rows x 4 bytes x 255 fits
	his, los := uint64(0), ^uint64(0)
	for off := 0; off < psBlock*stride; off += 2 * stride {
		r := (*[16]byte)(pix[off : off+16])
		a, b := binary.LittleEndian.Uint64(r[:8]), binary.LittleEndian.Uint64(r[8:])
		acc += a&m + (a>>8)&m + b&m + (b>>8)&m
		mx, mn := maxMinBytes(a, b)
		his, _ = maxMinBytes(his, mx)
		_, los = maxMinBytes(los, mn)
	}
	sum := (acc * 0x0001000100010001) >> 48 // the four sums: at most 128 x 255
	lo, hi = foldMinMax(los, his)
	return int32(sum / 128), lo, hi
}

// foldMinMax returns the smallest byte of los and the largest of his.
func foldMinMax(los, his uint64) (lo, hi uint8) {
	// fold the eight bytes into the lowest (the others keep what they will)
	his, _ = maxMinBytes(his, his>>32)
	_, los = maxMinBytes(los, los>>32)
	his, _ = maxMinBytes(his, his>>16)
	_, los = maxMinBytes(los, los>>16)
	his, _ = maxMinBytes(his, his>>8)
	_, los = maxMinBytes(los, los>>8)
	return uint8(los), uint8(his)
}

// maxMinBytes returns the bytewise maximum and minimum of a and b (unsigned bytes,
// eight to a word, no carry between them).
func maxMinBytes(a, b uint64) (mx, mn uint64) {
	const h, l = 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	t := (a | h) - (b & l) // per byte: top bit set where a's low 7 bits >= b's
	ge := (a&^b | ^(a^b)&t) & h
	mask := (ge >> 7) * 0xff // 0xff where a >= b
	d := (a ^ b) & mask
	return b ^ d, a ^ d
}

// blockThresholds computes the threshold and contrast of each block of block row
// by over the 3x3 blocks around it; a block with too little contrast is blank (0).
// The columns of three blocks are summed first, then three columns.
func (p *prescanner) blockThresholds(by int) {
	y0, y1 := max(by-1, 0), min(by+1, p.bh-1)
	cs, clo, chi := p.colSum[:p.bw], p.colLo[:p.bw], p.colHi[:p.bw]
	for bx := range cs {
		var s int32
		lo, hi := uint8(255), uint8(0)
		for i := y0*p.bw + bx; i <= y1*p.bw+bx; i += p.bw {
			s += p.sum[i]
			lo, hi = min(lo, p.lo[i]), max(hi, p.hi[i])
		}
		cs[bx], clo[bx], chi[bx] = s, lo, hi
	}
	ny := int32(y1 - y0 + 1)
	thr, rng := p.thr[by*p.bw:(by+1)*p.bw], p.rng[by*p.bw:(by+1)*p.bw]
	for bx := range thr {
		x0, x1 := max(bx-1, 0), min(bx+1, p.bw-1)
		var s int32
		lo, hi := uint8(255), uint8(0)
		for xx := x0; xx <= x1; xx++ {
			s += cs[xx]
			lo, hi = min(lo, clo[xx]), max(hi, chi[xx])
		}
		t := uint8(s / (ny * int32(x1-x0+1)))
		if int(hi)-int(lo) < p.minRange {
			t = 0
		} else if t == 0 {
			t = 1
		}
		thr[bx], rng[bx] = t, hi-lo
	}
}

// dark reports whether the pixel at x, y is darker than its local threshold, and
// whether it is in a blank neighbourhood.
func (p *prescanner) dark(x, y int) (dark, blank bool) {
	if y>>psShift >= p.thrRows { // never a threshold of the last frame
		p.ensure(y >> psShift)
	}
	t := p.thr[(y>>psShift)*p.bw+(x>>psShift)]
	return p.g.Pix[y*p.stride+x] < t, t == 0
}

// lineRuns is the tail of the runs of one row or column.
type lineRuns struct {
	// the last eight runs: their lengths, whether each is dark and the index just
	// after it, twice over (see push); in the window the newest is at 7
	rb   [16]int32
	db   [16]bool
	eb   [16]int
	h    int
	have int
	// a start pattern waiting for its first two symbols: runs still to see, the
	// module size (x16) and the current symbol's width so far
	pend, m16, sym, nsym int32
	gsize, gmods         int32  // runs and modules per symbol
	kind                 string // what it is when the symbols pass
}

// push adds a run that ends just before j and checks the patterns; true means found.
func (p *prescanner) push(l *lineRuns, n int32, d bool, j, i int, row bool) bool {
	// each run is stored twice, at h and h+8, so that the last eight are always
	// one window in order (no shifting: a noisy row has a run every pixel or two)
	l.h = (l.h + 1) & 7
	l.rb[l.h], l.rb[l.h+8], l.db[l.h], l.db[l.h+8], l.eb[l.h], l.eb[l.h+8] = n, n, d, d, j, j
	runs, dark, ends := l.rb[l.h+1:l.h+9], l.db[l.h+1:l.h+9], l.eb[l.h+1:l.h+9]
	l.have++
	if row && !p.noQR && l.have >= 5 && runs[3]+runs[4]+runs[5]+runs[6]+runs[7] >= psMinFinder && p.finder(runs[3:], j, i) {
		p.found = "finder"
		return true
	}
	if l.pend > 0 {
		// symbols: Code 128's are 6 runs of 1 to 4 modules, 11 modules in all;
		// EAN's digits 4 runs, 7 modules
		l.pend--
		l.sym += n
		l.nsym++
		ok := n*16 <= 5*l.m16
		if ok && l.nsym == l.gsize {
			d := l.sym*16 - l.gmods*l.m16
			ok = d <= 2*l.m16 && d >= -2*l.m16
			l.sym, l.nsym = 0, 0
		}
		switch {
		case !ok:
			l.pend = 0
		case l.pend == 0:
			p.line, p.lineM16, p.lineRow = i, l.m16, row
			p.found = l.kind
			return true
		}
	}
	if p.no1D {
		return false
	}
	if p.ean && l.pend == 0 && l.have >= 4 && eanGuard(runs, dark) && p.tall(runs, dark, ends, i, row) {
		l.pend, l.sym, l.nsym, l.gsize, l.gmods, l.kind = 8, 0, 0, 4, 7, "ean"
		l.m16 = (runs[5] + runs[6] + runs[7]) * 16 / 3
		return false
	}
	// (runs not seen yet are zero: a quiet zone from the frame's edge is one run)
	if l.have >= 7 && l.pend == 0 && (runs[1] >= 5 || runs[0] >= 5) { // quiet zones of 5+ modules
		if total := p.start(runs, dark); total > 0 && p.tall(runs, dark, ends, i, row) {
			l.pend, l.sym, l.nsym, l.gsize, l.gmods = 12, 0, 0, 6, 11
			l.kind = "col-1d"
			if row {
				l.kind = "row-1d"
			}
			l.m16 = total * 16 / 11
			if dark[7] { // a reversed stop (13 modules) ends dark, a start light
				l.m16 = total * 16 / 13
			}
		}
	}
	return false
}

// scanRow walks row y block by block (one threshold per block) and checks each run.
func (p *prescanner) scanRow(y int) bool {
	var l lineRuns
	row := p.g.Pix[y*p.stride : y*p.stride+p.g.Width]
	thr := p.thr[(y>>psShift)*p.bw : (y>>psShift+1)*p.bw]
	cur, curDark := int32(0), false
	for bx, t := range thr {
		x0 := bx << psShift
		seg := row[x0:min(x0+psBlock, len(row))]
		if t == 0 && !curDark { // blank: the light run goes on
			cur += int32(len(seg))
			continue
		}
		for k, v := range seg {
			d := v < t // t == 0 (blank): never dark
			if d == curDark {
				cur++
				continue
			}
			if cur > 0 && p.push(&l, cur, curDark, x0+k, y, true) {
				return true
			}
			cur, curDark = 1, d
		}
	}
	return p.push(&l, cur, curDark, len(row), y, true)
}

// scanCol walks column x for 1D codes held upright.
func (p *prescanner) scanCol(x int) bool {
	var l lineRuns
	cur, curDark := int32(0), false
	for y := 0; y < p.g.Height; y++ {
		var d bool
		if y>>psShift < p.thrRows { // (dark, inlined)
			t := p.thr[(y>>psShift)*p.bw+(x>>psShift)]
			d = p.g.Pix[y*p.stride+x] < t // t == 0 (blank): never dark
		} else {
			dk, blank := p.dark(x, y)
			d = dk && !blank
		}
		if d == curDark {
			cur++
			continue
		}
		if cur > 0 && p.push(&l, cur, curDark, y, x, false) {
			return true
		}
		cur, curDark = 1, d
	}
	return p.push(&l, cur, curDark, p.g.Height, x, false)
}

// finder checks the newest five runs for 1:1:3:1:1 and confirms the centre in the
// other directions. end is the index just after the newest run on row y.
func (p *prescanner) finder(r []int32, end, y int) bool {
	total := r[0] + r[1] + r[2] + r[3] + r[4]
	if total < psMinFinder || !ratio11311(r[0], r[1], r[2], r[3], r[4]) {
		return false
	}
	// r[4] is the newest; the centre run is r[2]
	cx := end - int(r[4]) - int(r[3]) - int(r[2]+1)/2
	c0 := end - int(total)
	// a row through a finder confirmed already (every third row crosses one about
	// ten times) is that finder: not measured again
	for _, o := range p.finds[:p.nfind] {
		dx, dy := float64(cx-o.x), float64(y-o.y)
		if dx*dx+dy*dy < o.size*o.size/4 {
			return false
		}
	}
	if !p.contrasty(y, c0+int(r[0]), r[1], r[2], r[3]) {
		return false
	}
	// the centre pixel's colour decides the polarity
	// the crosses below walk at most 2*total from a point at most 2*total below y
	p.ensure((y + 4*int(total) + 2) >> psShift)
	cd, _ := p.dark(cx, y)
	h := total
	v, cy, ok := p.cross(cx, y, 0, 1, cd, total)
	if !ok {
		return false
	}
	h2, cx2, ok := p.cross(cx, cy, 1, 0, cd, total)
	if !ok {
		return false
	}
	_ = h2
	d1, _, ok1 := p.cross(cx2, cy, 1, 1, cd, total)
	d2, _, ok2 := p.cross(cx2, cy, 1, -1, cd, total)
	if !ok1 || !ok2 {
		return false
	}
	// the centre is 3 modules tall: the rows beside the confirmed centre cross it too
	if _, _, ok := p.cross(cx2, cy-1, 1, 0, cd, total); !ok {
		return false
	}
	if _, _, ok := p.cross(cx2, cy+1, 1, 0, cd, total); !ok {
		return false
	}
	// extents through the centre of a square seen at any angle: between 7 and 9.9
	// modules; diagonal steps are sqrt(2) long
	ext := [4]float64{float64(h), float64(v), float64(d1) * 1.4142, float64(d2) * 1.4142}
	lo, hi := ext[0], ext[0]
	for _, e := range ext[1:] {
		lo, hi = min(lo, e), max(hi, e)
	}
	if hi > 1.75*lo {
		return false
	}
	// one finder is not a QR code: the frame must show three, of about the same
	// module size and more than a finder apart (14 modules in a version 1 code)
	f := psFinder{cx2, cy, (lo + hi) / 2, lo / 7}
	for _, o := range p.finds[:p.nfind] {
		if near(f, o, 1) {
			return false // the same finder again
		}
	}
	for i, a := range p.finds[:p.nfind] {
		if !compatible(f, a) {
			continue
		}
		for _, b := range p.finds[i+1 : p.nfind] {
			if compatible(f, b) && compatible(a, b) && rightIsosceles(f, a, b) && !p.skipped(f, a, b) {
				p.tri = [3]psFinder{f, a, b}
				return true
			}
		}
	}
	if p.nfind < len(p.finds) {
		p.finds[p.nfind] = f
		p.nfind++
	}
	return false
}

// skipTriple remembers the last three finders as tried (codeLike looks further).
func (p *prescanner) skipTriple() {
	if p.nskip < len(p.skip) {
		p.skip[p.nskip] = p.tri
		p.nskip++
	}
}

// forget drops what skipTriple and no1D remembered, for the next frame.
func (p *prescanner) forget() { p.nskip, p.no1D, p.noQR = 0, false, false }

// skipped reports whether the triple was tried already.
func (p *prescanner) skipped(a, b, c psFinder) bool {
	has := func(t [3]psFinder, f psFinder) bool {
		return (t[0].x == f.x && t[0].y == f.y) || (t[1].x == f.x && t[1].y == f.y) || (t[2].x == f.x && t[2].y == f.y)
	}
	for _, t := range p.skip[:p.nskip] {
		if has(t, a) && has(t, b) && has(t, c) {
			return true
		}
	}
	return false
}

// near reports whether two finders' centres are within k of a's size.
func near(a, b psFinder, k float64) bool {
	dx, dy := float64(a.x-b.x), float64(a.y-b.y)
	return dx*dx+dy*dy < k*k*a.size*a.size
}

// rightIsosceles reports whether three finders sit like a QR code's: two sides about
// equal and the third about their hypotenuse (loosely: the code may be tilted).
func rightIsosceles(a, b, c psFinder) bool {
	d := func(p, q psFinder) float64 {
		dx, dy := float64(p.x-q.x), float64(p.y-q.y)
		return dx*dx + dy*dy
	}
	x, y, z := d(a, b), d(a, c), d(b, c)
	if x > z {
		x, z = z, x
	}
	if y > z {
		y, z = z, y
	}
	if x > y {
		x, y = y, x
	}
	return x >= 0.5*y && math.Abs(z-(x+y)) <= 0.3*z
}

// compatible reports whether two finders could belong to one QR code.
func compatible(a, b psFinder) bool {
	r := a.size / b.size
	if r < 0.6 || r > 1/0.6 || near(a, b, 1.2) {
		return false
	}
	// at most 170 modules apart (version 40 is 177 modules wide)
	dx, dy := float64(a.x-b.x), float64(a.y-b.y)
	m := 170 * max(a.module, b.module)
	return dx*dx+dy*dy <= m*m
}

// psFinder is a confirmed finder pattern: its centre and extent in pixels.
type psFinder struct {
	x, y   int
	size   float64
	module float64 // module size: the narrowest extent is 7 modules
}

// contrasty reports whether, on row y from x, the run of n1 pixels and the run of
// n3 after the middle run of n2 differ from it by a good part of the local contrast
// (noise at the threshold makes runs, but of small contrast).
func (p *prescanner) contrasty(y, x int, n1, n2, n3 int32) bool {
	row := p.g.Pix[y*p.stride:]
	var s1, s2 int32
	for i := x; i < x+int(n1); i++ {
		s1 += int32(row[i])
	}
	for i := x + int(n1); i < x+int(n1+n2); i++ {
		s2 += int32(row[i])
	}
	for i := x + int(n1+n2); i < x+int(n1+n2+n3); i++ {
		s1 += int32(row[i])
	}
	mid := x + int(n1) + int(n2)/2
	rng := int32(p.rng[(y>>psShift)*p.bw+(mid>>psShift)])
	// |mean1 - mean2| >= 0.35 * rng
	d := s1*n2 - s2*(n1+n3)
	if d < 0 {
		d = -d
	}
	return d*20 >= 7*rng*n2*(n1+n3)
}

// cross measures the 1:1:3:1:1 pattern through (x, y) along (dx, dy); cd is the
// centre's colour. It returns the pattern's extent in steps and the centre's
// coordinate along the direction (y for vertical, x otherwise).
func (p *prescanner) cross(x, y, dx, dy int, cd bool, ref int32) (int32, int, bool) {
	limit := 2 * ref // a finder is never much longer in one direction than another
	var c [5]int32   // outer, ring, centre, ring, outer
	w, h := p.g.Width, p.g.Height
	walk := func(sx, sy int, counts *[3]int32) bool {
		x, y := x, y
		state := 0 // 0 centre, 1 ring, 2 outer
		want := cd
		var n int32
		for {
			if x < 0 || y < 0 || x >= w || y >= h {
				return state == 2 && counts[2] > 0
			}
			var d bool
			if y>>psShift < p.thrRows { // (dark, inlined: finder computed the thresholds)
				t := p.thr[(y>>psShift)*p.bw+(x>>psShift)]
				d = p.g.Pix[y*p.stride+x] < t // t == 0 (blank): never dark
			} else {
				dk, blank := p.dark(x, y)
				d = dk && !blank
			}
			if d != want {
				if state == 2 {
					return counts[2] > 0
				}
				state++
				want = !want
			}
			counts[state]++
			n++
			if n > limit {
				return false
			}
			x += sx
			y += sy
		}
	}
	var fwd, back [3]int32
	if !walk(dx, dy, &fwd) || !walk(-dx, -dy, &back) {
		return 0, 0, false
	}
	c[0], c[1], c[2], c[3], c[4] = back[2], back[1], fwd[0]+back[0]-1, fwd[1], fwd[2]
	if !ratio11311(c[0], c[1], c[2], c[3], c[4]) {
		return 0, 0, false
	}
	// centre of the middle run along the direction
	off := (fwd[0] - back[0]) / 2
	centre := y + int(off)*dy
	if dy == 0 || dx != 0 {
		centre = x + int(off)*dx
	}
	return c[0] + c[1] + c[2] + c[3] + c[4], centre, true
}

// ratio11311 is zxing's finder test, a little looser: each 1-module run within 0.8
// of a module (blur and small modules) and the centre within 1.5 modules of 3, and
// at least 1.5 times as wide as the rings.
func ratio11311(a, b, c, d, e int32) bool {
	total := a + b + c + d + e
	if total < 7 || a == 0 || b == 0 || c == 0 || d == 0 || e == 0 {
		return false
	}
	// in 1/7ths of a module: m7 = total = 7 modules' worth, so a module is total/7
	m := total // scale all by 7
	ok := func(r int32, k int32) bool {
		diff := r*7 - k*m
		if diff < 0 {
			diff = -diff
		}
		if k == 3 {
			return diff*10 < 15*m
		}
		return diff*10 < 8*m
	}
	// and the centre clearly wider than the rings (stripes are 1:1:1:1:1)
	return ok(a, 1) && ok(b, 1) && ok(c, 3) && ok(d, 1) && ok(e, 1) && 2*c >= 3*max(b, d)
}

// Code 128 start patterns A, B, C, and the stop pattern backwards (dark first, in
// modules), and the EAN guard.
var (
	c128Starts = [3][6]int32{{2, 1, 1, 4, 1, 2}, {2, 1, 1, 2, 1, 4}, {2, 1, 1, 2, 3, 2}}
	c128StopR  = [7]int32{2, 1, 1, 1, 3, 3, 2}
)

// start checks the newest runs for a Code 128 start (or reversed stop) pattern after
// a quiet zone, or with EAN-13 on an EAN guard followed by bars. runs[7] is the
// newest; dark[k] tells runs[k]'s colour.
func (p *prescanner) start(runs []int32, dark []bool) int32 {
	// start: quiet runs[1], then runs[2..7] dark first
	if dark[2] && !dark[1] && matchModules(runs[2:8], c128Starts[:], runs[1], 11) {
		return runs[2] + runs[3] + runs[4] + runs[5] + runs[6] + runs[7]
	}
	// reversed stop: quiet runs[0], then runs[1..7]
	if dark[1] && !dark[0] && matchStop(runs[1:8], runs[0]) {
		return runs[1] + runs[2] + runs[3] + runs[4] + runs[5] + runs[6] + runs[7]
	}
	return 0
}

// eanGuard checks the newest runs for an EAN guard (1:1:1, dark first) after a quiet
// zone of 5 modules.
func eanGuard(runs []int32, dark []bool) bool {
	m := runs[5] + runs[6] + runs[7]
	return dark[5] && !dark[4] && m >= 3 && runs[4]*3 >= 5*m && closeTo(runs[5:8], []int32{1, 1, 1}, m, 3)
}

// tall checks that the newest runs of line i continue in the lines beside it (the
// bars of a 1D code are tall; noise is not): the middle of each of the last six runs
// has the same colour one line before and after.
func (p *prescanner) tall(runs []int32, dark []bool, ends []int, i int, row bool) bool {
	lines := p.g.Height
	if !row {
		lines = p.g.Width
	}
	if i < 2 || i+2 >= lines {
		return false
	}
	for k := 2; k < 8; k++ {
		m := ends[k] - int(runs[k]+1)/2
		for _, o := range [4]int{i - 2, i - 1, i + 1, i + 2} {
			var d, blank bool
			if row {
				d, blank = p.dark(m, o)
			} else {
				d, blank = p.dark(o, m)
			}
			if d && !blank != dark[k] {
				return false
			}
		}
	}
	return true
}

// matchModules reports whether r (len 6) matches one of the patterns (sum mods
// modules) after a light run of at least 5 modules.
func matchModules(r []int32, pats [][6]int32, quiet int32, mods int32) bool {
	var total int32
	for _, v := range r {
		total += v
	}
	if total < mods || quiet*mods < 5*total {
		return false
	}
	for _, pat := range pats {
		if closeTo(r, pat[:], total, mods) {
			return true
		}
	}
	return false
}

func matchStop(r []int32, quiet int32) bool {
	var total int32
	for _, v := range r {
		total += v
	}
	if total < 13 || quiet*13 < 5*total {
		return false
	}
	return closeTo(r, c128StopR[:], total, 13)
}

// closeTo reports whether each run is within 0.7 modules of the pattern and all of
// them within 0.35 on average (a module being total/mods).
func closeTo(r, pat []int32, total, mods int32) bool {
	var sum int32
	for i, v := range pat {
		diff := r[i]*mods - v*total
		if diff < 0 {
			diff = -diff
		}
		if diff*10 > 7*total {
			return false
		}
		sum += diff
	}
	return sum*20 <= 7*total*int32(len(pat))
}
