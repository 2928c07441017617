package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
)

// This file reads bbolt's file format itself, with every offset checked, so that a
// damaged file is found (and salvaged) without handing bbolt a page it would panic
// on, fault on, or recurse into forever. The layout is bbolt's (v1.x, native
// little-endian on every platform posd runs on):
//
//	page header (16 bytes): id u64, flags u16, count u16, overflow u32
//	meta (at 16 in pages 0 and 1): magic u32, version u32, pageSize u32, flags u32,
//	    root {pgid u64, sequence u64}, freelist u64, pgid (high water mark) u64,
//	    txid u64, checksum u64 (FNV-64a of the 56 bytes before it)
//	branch element (16 bytes): pos u32, ksize u32, pgid u64
//	leaf element (16 bytes): flags u32, pos u32, ksize u32, vsize u32
//	freelist: count ids of u64 after the header (count 0xFFFF: the first u64 is the count)
//
// bbolt writes a branch or leaf page in one way only (node.write): the element array,
// then every key and value back to back in element order. So element 0's data starts
// right after the array and each element's data right after the one before. A page
// that breaks this was not written by bbolt: that catches a damaged count (which
// would otherwise just hide the page's last records) and damaged positions and sizes.

const (
	pageHeaderSize   = 16
	elemSize         = 16
	metaMagic        = 0xED0CDAED
	metaVersion      = 2
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	bucketLeafFlag   = 0x01
	bucketHeaderSize = 16
	noFreelist       = ^uint64(0)
	// maxDepth bounds a tree's depth: 4 KiB pages hold at least a few keys each, so
	// real trees are well under 10 levels; deeper means a cycle or garbage.
	maxDepth = 32
	// maxProblems caps how many problems a walk lists.
	maxProblems = 20
)

var le = binary.LittleEndian

// metaPage is one decoded meta page.
type metaPage struct {
	pageSize uint32
	root     uint64
	seq      uint64 // the root bucket's sequence
	freelist uint64
	hwm      uint64 // high water mark: pages in use are below it
	txid     uint64
	err      error // why it does not validate; nil when valid
}

func parseMeta(page []byte) metaPage {
	if len(page) < pageHeaderSize+64 {
		return metaPage{err: errors.New("meta page cut short")}
	}
	b := page[pageHeaderSize:]
	m := metaPage{
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		seq:      le.Uint64(b[24:]),
		freelist: le.Uint64(b[32:]),
		hwm:      le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case le.Uint32(b[0:]) != metaMagic:
		m.err = errors.New("bad magic")
	case le.Uint32(b[4:]) != metaVersion:
		m.err = fmt.Errorf("bad version %d", le.Uint32(b[4:]))
	case le.Uint64(b[56:]) != h.Sum64():
		m.err = errors.New("bad checksum")
	case m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0:
		m.err = fmt.Errorf("bad page size %d", m.pageSize)
	}
	return m
}

// pageFile reads pages of a bbolt file through ReadAt.
type pageFile struct {
	r     io.ReaderAt
	size  int64
	ps    int
	meta  metaPage    // the meta bbolt would use
	metas [2]metaPage // both, as found
}

// readMetas reads both meta pages and picks the one bbolt would use (the valid one
// with the higher txid). It fails when neither is valid, when the file is shorter
// than the meta's high water mark (truncated), or when the meta points outside it.
func readMetas(r io.ReaderAt, size int64) (*pageFile, error) {
	pf := &pageFile{r: r, size: size}
	if size < 2*512 {
		return pf, fmt.Errorf("file is %d bytes, too short for a bbolt file", size)
	}
	buf := make([]byte, 4096)
	n, _ := r.ReadAt(buf, 0)
	pf.metas[0] = parseMeta(buf[:n])
	// Meta 1 sits one page in; without a valid meta 0 the page size is a guess.
	sizes := []int{4096, os.Getpagesize(), 8192, 16384, 65536, 1024, 2048}
	if pf.metas[0].err == nil {
		sizes = append([]int{int(pf.metas[0].pageSize)}, sizes...)
	}
	pf.metas[1] = metaPage{err: errors.New("not found")}
	for _, ps := range sizes {
		if int64(ps)+pageHeaderSize+64 > size {
			continue
		}
		n, _ := r.ReadAt(buf[:pageHeaderSize+64], int64(ps))
		if m := parseMeta(buf[:n]); m.err == nil && int(m.pageSize) == ps {
			pf.metas[1] = m
			break
		}
	}
	a, b := pf.metas[0], pf.metas[1]
	if b.err == nil && (a.err != nil || b.txid > a.txid) {
		a = b
	}
	if a.err != nil {
		return pf, fmt.Errorf("both meta pages are invalid (page 0: %v; page 1: %v)", pf.metas[0].err, pf.metas[1].err)
	}
	pf.meta, pf.ps = a, int(a.pageSize)
	if want := int64(a.hwm) * int64(pf.ps); a.hwm > 1<<40 || want > size {
		return pf, fmt.Errorf("file is %d bytes but its meta page (txid %d) says %d pages of %d bytes: the file is truncated", size, a.txid, a.hwm, pf.ps)
	}
	if a.root < 2 || a.root >= a.hwm {
		return pf, fmt.Errorf("meta page (txid %d) names root page %d outside the file (%d pages)", a.txid, a.root, a.hwm)
	}
	if a.freelist != noFreelist && (a.freelist < 2 || a.freelist >= a.hwm) {
		return pf, fmt.Errorf("meta page (txid %d) names freelist page %d outside the file (%d pages)", a.txid, a.freelist, a.hwm)
	}
	return pf, nil
}

// page returns page id with its overflow pages, checking that all of it lies below
// limit pages and inside the file.
func (pf *pageFile) page(id, limit uint64) ([]byte, error) {
	if id < 2 || id >= limit {
		return nil, fmt.Errorf("page %d is outside the file (%d pages)", id, limit)
	}
	buf := make([]byte, pf.ps)
	if err := readFull(pf.r, buf, int64(id)*int64(pf.ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	over := uint64(le.Uint32(buf[12:]))
	if over == 0 {
		return buf, nil
	}
	if id+over >= limit {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the end of the file (%d pages)", id, over, limit)
	}
	buf = append(buf, make([]byte, over*uint64(pf.ps))...)
	if err := readFull(pf.r, buf[pf.ps:], (int64(id)+1)*int64(pf.ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

func readFull(r io.ReaderAt, b []byte, off int64) error {
	_, err := r.ReadAt(b, off)
	return err
}

// elem is one branch or leaf element, sliced out of its page.
type elem struct {
	flags uint32 // leaf: bucketLeafFlag for a sub-bucket
	key   []byte
	value []byte // leaf only
	child uint64 // branch only
}

// parseElems checks a branch or leaf page's element layout (see the file comment) and
// returns its elements.
func parseElems(p []byte) (flags uint16, es []elem, err error) {
	if len(p) < pageHeaderSize {
		return 0, nil, errors.New("page cut short")
	}
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return flags, nil, fmt.Errorf("page type 0x%02x, want branch or leaf", flags)
	}
	off := pageHeaderSize + elemSize*count
	if off > len(p) {
		return flags, nil, fmt.Errorf("element count %d does not fit the page", count)
	}
	es = make([]elem, count)
	for i := range es {
		at := pageHeaderSize + elemSize*i
		var pos, ks, vs uint32
		if flags == flagLeaf {
			es[i].flags = le.Uint32(p[at:])
			pos, ks, vs = le.Uint32(p[at+4:]), le.Uint32(p[at+8:]), le.Uint32(p[at+12:])
			if es[i].flags&^bucketLeafFlag != 0 {
				return flags, nil, fmt.Errorf("element %d has flags 0x%x", i, es[i].flags)
			}
		} else {
			pos, ks = le.Uint32(p[at:]), le.Uint32(p[at+4:])
			es[i].child = le.Uint64(p[at+8:])
		}
		if at+int(pos) != off {
			return flags, nil, fmt.Errorf("element %d of %d starts at %d, bbolt would have put it at %d (count or element damaged)", i, count, at+int(pos), off)
		}
		if ks == 0 {
			return flags, nil, fmt.Errorf("element %d has an empty key", i)
		}
		end := uint64(off) + uint64(ks) + uint64(vs)
		if end > uint64(len(p)) {
			return flags, nil, fmt.Errorf("element %d runs past the end of the page", i)
		}
		es[i].key = p[off : off+int(ks)]
		es[i].value = p[off+int(ks) : end]
		off = int(end)
	}
	return flags, es, nil
}

// problem is one damaged page (or structure) found by a walk.
type problem struct {
	bucket string // top-level bucket; "" for the root bucket or the file
	page   uint64
	lo, hi []byte // the key range the page should hold (nil: open ended)
	err    error
}

func (p problem) Error() string {
	where := "file"
	if p.bucket != "" {
		where = "bucket " + p.bucket
	}
	if p.page != 0 {
		return fmt.Sprintf("%s, page %d: %v", where, p.page, p.err)
	}
	return fmt.Sprintf("%s: %v", where, p.err)
}

// walker visits every page reachable from a meta page, checking each, and calls
// visit with every key and value it could read. It never panics on a damaged file.
type walker struct {
	pf       *pageFile
	hwm      uint64
	seen     []bool // reachable, or the freelist's own pages
	free     []bool // listed in the freelist
	problems []problem
	// visit, if set, receives each readable record of a top-level bucket (k and v
	// alias page buffers).
	visit func(bucket string, k, v []byte)
	// bucket, if set, receives each top-level bucket's header.
	bucket func(name string, seq uint64)
	// lenient repairs a damaged element count where the layout allows (salvage).
	lenient bool
}

func newWalker(pf *pageFile) *walker {
	return &walker{pf: pf, hwm: pf.meta.hwm, seen: make([]bool, pf.meta.hwm), free: make([]bool, pf.meta.hwm)}
}

func (w *walker) report(p problem) {
	w.problems = append(w.problems, p)
}

// walkRoot walks the root bucket page root, then every top-level bucket.
func (w *walker) walkRoot(root uint64) {
	w.walkPage("", root, 0, nil, nil)
}

// walkPage checks page id of bucket and descends. lo and hi bound its keys.
func (w *walker) walkPage(bucket string, id uint64, depth int, lo, hi []byte) {
	fail := func(err error) { w.report(problem{bucket: bucket, page: id, lo: lo, hi: hi, err: err}) }
	if depth > maxDepth {
		fail(fmt.Errorf("tree deeper than %d levels (a cycle?)", maxDepth))
		return
	}
	if id < 2 || id >= w.hwm {
		fail(fmt.Errorf("page %d is outside the file (%d pages)", id, w.hwm))
		return
	}
	if w.seen[id] {
		fail(errors.New("page is referenced twice"))
		return
	}
	p, err := w.pf.page(id, w.hwm)
	if err != nil {
		fail(err)
		return
	}
	w.seen[id] = true
	if got := le.Uint64(p); got != id {
		fail(fmt.Errorf("page header says page %d", got))
		return
	}
	parse := parseElems
	if w.lenient {
		parse = parseElemsLenient
	}
	flags, es, err := parse(p)
	if err != nil {
		fail(err)
		return
	}
	// Only a page that parses claims its overflow pages: a damaged header's overflow
	// count must not hide the pages after it.
	for i := id + 1; i < id+uint64(len(p)/w.pf.ps); i++ {
		if w.seen[i] {
			fail(fmt.Errorf("overflow page %d is also in use", i))
			return
		}
		w.seen[i] = true
	}
	if n := int(le.Uint16(p[10:])); n != len(es) {
		fail(fmt.Errorf("element count %d damaged; read %d elements", n, len(es)))
	} else if lo != nil && n == 0 {
		// bbolt removes a page that becomes empty from its parent: an empty page
		// below a branch is a damaged count hiding its records.
		fail(errors.New("empty page below a branch page (element count damaged?)"))
		return
	}
	var prev []byte
	for i, e := range es {
		if (prev != nil && bytes.Compare(e.key, prev) <= 0) || (lo != nil && bytes.Compare(e.key, lo) < 0) || (hi != nil && bytes.Compare(e.key, hi) >= 0) {
			fail(fmt.Errorf("key %d out of order", i))
			continue
		}
		prev = e.key
		if flags == flagBranch {
			next := hi
			if i+1 < len(es) {
				next = es[i+1].key
			}
			w.walkPage(bucket, e.child, depth+1, e.key, next)
			continue
		}
		w.leafElem(bucket, e, depth)
	}
}

// leafElem handles one leaf element: a record, or a sub-bucket to descend into.
func (w *walker) leafElem(bucket string, e elem, depth int) {
	if e.flags&bucketLeafFlag == 0 {
		if bucket != "" && w.visit != nil {
			w.visit(bucket, e.key, e.value)
		}
		return
	}
	name := bucket
	if name == "" {
		name = string(e.key)
	} else {
		name += "/" + string(e.key)
	}
	if len(e.value) < bucketHeaderSize {
		w.report(problem{bucket: name, err: errors.New("bucket header cut short")})
		return
	}
	root, seq := le.Uint64(e.value), le.Uint64(e.value[8:])
	if w.bucket != nil && bucket == "" {
		w.bucket(name, seq)
	}
	if root != 0 {
		w.walkPage(name, root, depth+1, nil, nil)
		return
	}
	// An inline bucket: a leaf page inside the value.
	_, es, err := parseElems(e.value[bucketHeaderSize:])
	if err == nil && len(es) > 0 && le.Uint16(e.value[bucketHeaderSize+8:]) != flagLeaf {
		err = errors.New("inline bucket page is not a leaf")
	}
	if err != nil {
		w.report(problem{bucket: name, err: fmt.Errorf("inline bucket: %w", err)})
		return
	}
	var prev []byte
	for i, ie := range es {
		if prev != nil && bytes.Compare(ie.key, prev) <= 0 {
			w.report(problem{bucket: name, err: fmt.Errorf("inline bucket: key %d out of order", i)})
			continue
		}
		prev = ie.key
		w.leafElem(name, ie, depth+1)
	}
}

// walkFreelist reads the freelist page: every id in range, none also reachable.
func (w *walker) walkFreelist(id uint64) {
	if id == noFreelist {
		return
	}
	fail := func(err error) { w.report(problem{page: id, err: fmt.Errorf("freelist: %w", err)}) }
	p, err := w.pf.page(id, w.hwm)
	if err != nil {
		fail(err)
		return
	}
	if flags := le.Uint16(p[8:]); flags != flagFreelist {
		fail(fmt.Errorf("page type 0x%02x, want freelist", flags))
		return
	}
	for i := id; i < id+uint64(len(p)/w.pf.ps); i++ {
		if w.seen[i] {
			fail(fmt.Errorf("freelist page %d is also in use", i))
			return
		}
		w.seen[i] = true
	}
	at, count := pageHeaderSize, uint64(le.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < at+8 {
			fail(errors.New("cut short"))
			return
		}
		count, at = le.Uint64(p[at:]), at+8
	}
	if count > uint64(len(p)-at)/8 {
		fail(fmt.Errorf("count %d does not fit the page", count))
		return
	}
	bad := 0
	for i := uint64(0); i < count; i++ {
		f := le.Uint64(p[at+8*int(i):])
		switch {
		case f < 2 || f >= w.hwm:
			bad++
			if bad == 1 {
				fail(fmt.Errorf("free page %d is outside the file", f))
			}
		case w.seen[f] || w.free[f]:
			bad++
			if bad == 1 {
				fail(fmt.Errorf("page %d is both free and in use", f))
			}
		default:
			w.free[f] = true
		}
	}
}

// unaccounted reports pages neither reachable nor free (when the file keeps a
// freelist).
func (w *walker) unaccounted() {
	if w.pf.meta.freelist == noFreelist {
		return
	}
	n, first := 0, uint64(0)
	for id := uint64(2); id < w.hwm; id++ {
		if !w.seen[id] && !w.free[id] {
			if n == 0 {
				first = id
			}
			n++
		}
	}
	if n > 0 {
		w.report(problem{err: fmt.Errorf("%d pages are neither reachable nor free (first: %d)", n, first)})
	}
}

// verifyFile checks the structure of the bbolt file at path without bbolt: meta
// pages, truncation, every page of every bucket, the freelist. It reads keys but not
// values. Damage comes back as a *DamagedError.
func verifyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	pf, err := readMetas(f, fi.Size())
	if err != nil {
		return damaged(path, err)
	}
	w := newWalker(pf)
	w.walkRoot(pf.meta.root)
	w.walkFreelist(pf.meta.freelist)
	w.unaccounted()
	return w.err(path)
}

// err joins the first problems into a *DamagedError, or returns nil.
func (w *walker) err(path string) error {
	if len(w.problems) == 0 {
		return nil
	}
	var msgs []string
	for i, p := range w.problems {
		if i == maxProblems {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(w.problems)-i))
			break
		}
		msgs = append(msgs, p.Error())
	}
	return damaged(path, errors.New(strings.Join(msgs, "; ")))
}

// preflight does what bbolt.Open itself relies on: valid meta pages, a file as long as
// the meta says, a freelist page that parses. It reads a few pages, whatever the
// file's size. A file that does not exist or is empty passes (bbolt creates it).
func preflight(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if fi.Size() == 0 {
		return nil
	}
	pf, err := readMetas(f, fi.Size())
	if err != nil {
		return damaged(path, err)
	}
	w := newWalker(pf)
	w.walkFreelist(pf.meta.freelist)
	return w.err(path)
}

// checkKeyPath reads, from the file, the pages from root down to the leaf where key
// would be, and checks each one's layout. A lookup that found nothing calls it, so
// that a damaged page (a damaged count hides records) answers ErrDamaged rather than
// "not found". It reads the file as committed: pages a write transaction changed are
// not on disk yet, so it only judges the structure, never the key's presence.
func (s *Store) checkKeyPath(root uint64, key []byte) error {
	if root == 0 {
		return nil // an inline bucket lives in its parent's page
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil // cannot look; not-found stands
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	pf := &pageFile{r: f, size: fi.Size(), ps: s.pageSize}
	limit := uint64(fi.Size() / int64(s.pageSize))
	id := root
	for depth := 0; depth <= maxDepth; depth++ {
		p, err := pf.page(id, limit)
		if err == nil && le.Uint64(p) != id {
			err = fmt.Errorf("page header says page %d", le.Uint64(p))
		}
		var (
			flags uint16
			es    []elem
		)
		if err == nil {
			flags, es, err = parseElems(p)
		}
		if err != nil {
			return damaged(s.path, fmt.Errorf("page %d: %w", id, err))
		}
		if len(es) == 0 && depth > 0 {
			return damaged(s.path, fmt.Errorf("page %d: empty page below a branch page (element count damaged?)", id))
		}
		if flags == flagLeaf || len(es) == 0 {
			return nil
		}
		next := es[0].child
		for _, e := range es[1:] {
			if bytes.Compare(e.key, key) > 0 {
				break
			}
			next = e.child
		}
		id = next
	}
	return damaged(s.path, fmt.Errorf("tree deeper than %d levels", maxDepth))
}
