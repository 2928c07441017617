package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SalvageReport says what Salvage copied and what it could not read.
type SalvageReport struct {
	// Kept counts the records copied, per bucket.
	Kept map[string]int
	// Sequences are the buckets' NextSequence counters written to the new file (never
	// lower than the old file's, so no outbox sequence or order number is reused).
	Sequences map[string]uint64
	// Orphans counts the records recovered from pages cut off from their bucket's
	// tree (a damaged branch page), found by scanning the file.
	Orphans int
	// Lost lists the damaged pages and the key ranges they held.
	Lost []string
	// Dropped lists in-doubt index entries (sale or refund ids) removed because their
	// record was lost, and other repairs made so the new file passes Check.
	Dropped []string
	// Notes are remarks on how the file was read (which meta page, truncation).
	Notes []string
}

// Salvage copies every record it can read from the bbolt file in into a new file
// out, which must not exist. in is only read (never locked, never written): stop
// posd first. It reads the pages itself, so a damaged page costs the records on that
// page only: records under a damaged branch page are found by scanning the file for
// leaf pages that are neither reachable nor free. Bucket sequence counters are kept
// (raised to the highest outbox key if needed). The outbox depth counter is
// recomputed and in-doubt index entries whose record was lost are dropped, so out
// passes Check. The report says what was kept and what was lost.
func Salvage(in, out string) (*SalvageReport, error) {
	rep := &SalvageReport{Kept: map[string]int{}, Sequences: map[string]uint64{}}
	if _, err := os.Stat(out); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, out)
	}
	f, err := os.Open(in)
	if err != nil {
		return nil, fmt.Errorf("store: salvage: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: salvage: %w", err)
	}
	data, err := salvageRead(f, fi.Size(), rep)
	if err != nil {
		return nil, err
	}
	if err := salvageWrite(out, data, rep); err != nil {
		return nil, err
	}
	// The new file must be sound: check it the way posd does.
	s, err := Open(out, Options{Verify: true})
	if err != nil {
		return rep, fmt.Errorf("store: salvage: the new file does not open: %w", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		return rep, fmt.Errorf("store: salvage: the new file does not pass the check: %w", err)
	}
	return rep, nil
}

// salvaged is what was read: per top-level bucket, its sequence and records.
type salvaged struct {
	seq     map[string]uint64
	records map[string]map[string][]byte
}

func (d *salvaged) put(bucket string, k, v []byte) bool {
	m := d.records[bucket]
	if m == nil {
		m = map[string][]byte{}
		d.records[bucket] = m
	}
	if _, dup := m[string(k)]; dup {
		return false
	}
	m[string(k)] = v
	return true
}

func salvageRead(f *os.File, size int64, rep *SalvageReport) (*salvaged, error) {
	d := &salvaged{seq: map[string]uint64{}, records: map[string]map[string][]byte{}}
	pf, err := readMetas(f, size)
	metaOK := pf.ps != 0 // a valid meta page was found
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error())
	}
	stale := false // the root page may be an older copy: raise the sequences
	if metaOK && pf.meta.root >= uint64(size/int64(pf.ps)) {
		// Truncated past the root: the other meta's (one commit older) may be in.
		rep.Notes = append(rep.Notes, fmt.Sprintf("the root page %d is past the end of the file", pf.meta.root))
		metaOK, stale = false, true
		for _, m := range pf.metas {
			if m.err == nil && m.root < uint64(size/int64(pf.ps)) && m.pageSize == uint32(pf.ps) {
				pf.meta, metaOK = m, true
				rep.Notes = append(rep.Notes, fmt.Sprintf("using the older meta page (txid %d, root page %d)", m.txid, m.root))
				break
			}
		}
	}
	if !metaOK {
		// Find the root bucket page by scanning: an older copy of it, so the newest
		// records may be missing and the sequences are raised with a margin.
		stale = true
		if err := findRoot(pf, size, rep); err != nil {
			return nil, err
		}
	}
	limit := uint64(size / int64(pf.ps))
	if metaOK && pf.meta.hwm < limit {
		limit = pf.meta.hwm
	}
	w := &walker{pf: pf, hwm: limit, seen: make([]bool, limit), free: make([]bool, limit), lenient: true}
	w.visit = func(bucket string, k, v []byte) {
		if d.put(bucket, k, v) {
			rep.Kept[bucket]++
		}
	}
	w.bucket = func(name string, seq uint64) {
		d.seq[name] = seq
		if d.records[name] == nil {
			d.records[name] = map[string][]byte{}
		}
	}
	w.walkRoot(pf.meta.root)
	freeKnown := false
	if metaOK && pf.meta.freelist != noFreelist {
		before := len(w.problems)
		w.walkFreelist(pf.meta.freelist)
		freeKnown = len(w.problems) == before
	}
	// Records cut off from their tree: leaf pages neither reachable nor free, whose
	// keys fall in a range a damaged page of one bucket held.
	var lost []problem
	for _, p := range w.problems {
		if p.bucket != "" && !strings.Contains(p.bucket, "/") && p.page != 0 {
			lost = append(lost, p)
		}
	}
	recovered := make([]int, len(lost))
	if len(lost) > 0 {
		if !freeKnown {
			rep.Notes = append(rep.Notes, "the freelist is unreadable: pages cut off from their tree cannot be told from old, freed copies; "+
				"a record found there is kept only when it looks like its bucket's and every copy of it agrees (an acknowledged outbox entry or a pruned sale may come back; the cloud dedups by key)")
		}
		type version struct {
			bucket string
			lost   int
			value  []byte
			clash  bool
		}
		found := map[string]*version{} // bucket + "\x00" + key
		var order []string
		ambiguous := 0
		for id := uint64(2); id < limit; id++ {
			if w.seen[id] || w.free[id] {
				continue
			}
			p, err := pf.page(id, limit)
			if err != nil || le.Uint64(p) != id {
				continue
			}
			_, es, err := parseElemsLenient(p)
			if err != nil || len(es) == 0 || le.Uint16(p[8:]) != flagLeaf {
				continue
			}
			if freeKnown {
				for i := id; i < id+uint64(len(p)/pf.ps); i++ {
					w.seen[i] = true
				}
			}
			first, last := es[0].key, es[len(es)-1].key
			match := -1
			for li, lp := range lost {
				if (lp.lo != nil && bytes.Compare(first, lp.lo) < 0) || (lp.hi != nil && bytes.Compare(last, lp.hi) >= 0) || !plausible(lp.bucket, es) {
					continue
				}
				if match >= 0 && lost[match].bucket != lp.bucket {
					match = -2 // fits two buckets: cannot tell whose it is
					break
				}
				match = li
			}
			if match == -2 {
				ambiguous++
			}
			if match < 0 {
				continue
			}
			bucket := lost[match].bucket
			for _, e := range es {
				k := bucket + "\x00" + string(e.key)
				v := found[k]
				if v == nil {
					found[k] = &version{bucket: bucket, lost: match, value: e.value}
					order = append(order, k)
				} else if !bytes.Equal(v.value, e.value) {
					v.clash = true
				}
			}
		}
		for _, k := range order {
			v := found[k]
			key := k[len(v.bucket)+1:]
			if v.clash {
				rep.Lost = append(rep.Lost, fmt.Sprintf("bucket %s, key %s: different copies found on pages cut off from the tree; none kept", v.bucket, printKey(v.bucket, []byte(key), "")))
				continue
			}
			if d.put(v.bucket, []byte(key), v.value) {
				rep.Kept[v.bucket]++
				rep.Orphans++
				recovered[v.lost]++
			}
		}
		if ambiguous > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d pages cut off from their tree fit more than one bucket and were not kept", ambiguous))
		}
	}
	for i, p := range w.problems {
		msg := p.Error()
		if p.page != 0 && p.bucket != "" {
			msg += fmt.Sprintf(" (keys from %s to before %s", printKey(p.bucket, p.lo, "the first"), printKey(p.bucket, p.hi, "the end"))
			for li, lp := range lost {
				if lp.page == p.page && lp.bucket == p.bucket && bytes.Equal(lp.lo, p.lo) {
					if recovered[li] > 0 {
						msg += fmt.Sprintf("; %d records found on pages cut off below it", recovered[li])
					}
					break
				}
			}
			msg += ")"
		}
		if i == 100 {
			rep.Lost = append(rep.Lost, fmt.Sprintf("and %d more", len(w.problems)-i))
			break
		}
		rep.Lost = append(rep.Lost, msg)
	}
	if stale {
		for name := range d.seq {
			d.seq[name] += staleMargin
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("the root bucket page is an older copy: every bucket sequence was raised by %d so no outbox sequence or order number is reused", staleMargin))
	}
	return d, nil
}

// staleMargin is added to the bucket sequences when they come from an older copy of
// the root page: sequence numbers may skip, but are never reused.
const staleMargin = 1_000_000

// plausible reports whether the records of a page cut off from its tree look like
// those of bucket: a guess used only to tell the buckets' pages apart. The engine's
// documents are JSON objects whose "id" is their key; a refund's has "sale_id", a
// batch's "number", a sale's neither (package payment owns these names; this is
// the only place the store looks inside a document, and only to salvage); outbox keys are
// 8-byte sequence numbers; in-doubt index values are short notes; code values are
// 8-byte times.
func plausible(bucket string, es []elem) bool {
	for _, e := range es {
		if e.flags&bucketLeafFlag != 0 {
			return false
		}
		k, v := e.key, e.value
		switch bucket {
		case string(bucketSales), string(bucketRefunds), string(bucketBatches):
			if len(v) == 0 || v[0] != '{' || !bytes.Contains(v, []byte(`"id":`+strconv.Quote(string(k)))) {
				return false
			}
			refund, batch := bytes.Contains(v, []byte(`"sale_id":`)), bytes.Contains(v, []byte(`"number":`))
			if refund != (bucket == string(bucketRefunds)) || batch != (bucket == string(bucketBatches)) {
				return false
			}
		case string(bucketOutbox):
			if len(k) != 8 || len(v) == 0 || v[0] != '{' {
				return false
			}
		case string(bucketUnsettled):
			if len(v) == 0 || len(v) > 64 || v[0] == '{' {
				return false
			}
		case string(bucketCodes):
			if len(v) != 8 {
				return false
			}
		}
	}
	return true
}

// printKey shows a key of bucket for the report: outbox keys as sequence numbers.
func printKey(bucket string, k []byte, none string) string {
	if k == nil {
		return none
	}
	if string(bucketOutbox) == bucket && len(k) == 8 {
		return "seq " + strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
	}
	return strconv.Quote(string(k))
}

// findRoot looks for the root bucket page when neither meta page is valid: first
// through the metas' own fields (a bad checksum may hide a good root), then by
// scanning for leaf pages that hold the store's buckets. Of several (old copies
// stay in the file until reused) it takes the one whose buckets count furthest
// (the highest sum of sequences: they only grow).
func findRoot(pf *pageFile, size int64, rep *SalvageReport) error {
	for _, m := range pf.metas {
		if pf.ps == 0 && m.pageSize >= 512 && m.pageSize <= 1<<16 && m.pageSize&(m.pageSize-1) == 0 {
			pf.ps = int(m.pageSize)
		}
	}
	if pf.ps == 0 {
		pf.ps = 4096
	}
	limit := uint64(size / int64(pf.ps))
	type candidate struct {
		id, score         uint64
		problems, records int
	}
	var cands []candidate
	for id := uint64(2); id < limit; id++ {
		p, err := pf.page(id, limit)
		if err != nil || le.Uint64(p) != id || le.Uint16(p[8:]) != flagLeaf {
			continue
		}
		_, es, err := parseElems(p)
		if err != nil {
			continue
		}
		score, ours := uint64(1), false
		for _, e := range es {
			if e.flags&bucketLeafFlag == 0 || len(e.value) < bucketHeaderSize {
				ours = false
				break
			}
			if bytes.Equal(e.key, bucketSales) || bytes.Equal(e.key, bucketOutbox) {
				ours = true
			}
			score += le.Uint64(e.value[8:])
		}
		if ours {
			cands = append(cands, candidate{id: id, score: score})
		}
	}
	if len(cands) == 0 {
		return fmt.Errorf("store: salvage: no usable meta page and no root bucket page found: nothing can be read")
	}
	// Sequences only grow, so the newest copy has the highest sum. Copies written
	// by commits that only deleted (acks) tie: of those, the newest has a sound tree
	// (older copies point at pages reused since) and the fewest records.
	sort.Slice(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	n := 1
	for n < len(cands) && n < 16 && cands[n].score == cands[0].score {
		n++
	}
	for i := range cands[:n] {
		w := &walker{pf: pf, hwm: limit, seen: make([]bool, limit), free: make([]bool, limit), lenient: true}
		w.visit = func(string, []byte, []byte) { cands[i].records++ }
		w.walkRoot(cands[i].id)
		cands[i].problems = len(w.problems)
	}
	sort.SliceStable(cands[:n], func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.problems != b.problems {
			return a.problems < b.problems
		}
		return a.records < b.records
	})
	best := cands[0].id
	pf.meta = metaPage{pageSize: uint32(pf.ps), root: best, freelist: noFreelist, hwm: limit}
	rep.Notes = append(rep.Notes, fmt.Sprintf("using root bucket page %d found by scanning (page size %d); records written after that copy are not found", best, pf.ps))
	return nil
}

// parseElemsLenient is parseElems, and when that fails, parseElems again with the
// count that element 0's position implies (bbolt puts element 0's data right after
// the element array, so a damaged count can be repaired from it). A page that reads
// as empty is tried the same way: bbolt never keeps an empty page below a branch.
func parseElemsLenient(p []byte) (uint16, []elem, error) {
	flags, es, err := parseElems(p)
	if (err == nil && len(es) > 0) || len(p) < pageHeaderSize+elemSize || (flags != flagLeaf && flags != flagBranch) {
		return flags, es, err
	}
	pos := le.Uint32(p[pageHeaderSize+4:])
	if flags == flagBranch {
		pos = le.Uint32(p[pageHeaderSize:])
	}
	n := pos / elemSize
	if n == 0 || n >= 0xFFFF || uint32(le.Uint16(p[10:])) == n {
		return flags, es, err
	}
	fixed := append([]byte(nil), p...)
	binary.LittleEndian.PutUint16(fixed[10:], uint16(n))
	if f2, es2, err2 := parseElems(fixed); err2 == nil {
		return f2, es2, nil
	}
	return flags, es, err
}

// storeBuckets are the buckets the store creates, in creation order.
var storeBuckets = [][]byte{bucketSales, bucketOutbox, bucketMeta, bucketUnsettled, bucketRefunds, bucketBatches, bucketConfig, bucketCodes}

func salvageWrite(out string, d *salvaged, rep *SalvageReport) (err error) {
	fh, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, out)
		}
		return fmt.Errorf("store: salvage: %w", err)
	}
	fh.Close()
	db, err := bolt.Open(out, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("store: salvage: %w", err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("store: salvage: %w", cerr)
		}
	}()
	// Repairs so the new file passes Check.
	outbox := d.records[string(bucketOutbox)]
	var maxSeq uint64
	for k := range outbox {
		if len(k) == 8 {
			maxSeq = max(maxSeq, binary.BigEndian.Uint64([]byte(k)))
		}
	}
	if d.seq[string(bucketOutbox)] < maxSeq {
		rep.Dropped = append(rep.Dropped, fmt.Sprintf("outbox sequence raised from %d to %d, its highest key", d.seq[string(bucketOutbox)], maxSeq))
		d.seq[string(bucketOutbox)] = maxSeq
	}
	for _, b := range storeBuckets {
		if d.records[string(b)] == nil {
			d.records[string(b)] = map[string][]byte{}
			rep.Dropped = append(rep.Dropped, fmt.Sprintf("bucket %s was not found; created empty", b))
		}
	}
	meta := d.records[string(bucketMeta)]
	if _, ok := meta[string(keySchema)]; !ok {
		meta[string(keySchema)] = []byte(strconv.Itoa(SchemaVersion))
		rep.Dropped = append(rep.Dropped, fmt.Sprintf("schema_version was lost; set to %d", SchemaVersion))
	}
	depth := seqKey(uint64(len(outbox)))
	if old, ok := meta[string(keyDepth)]; !ok || !bytes.Equal(old, depth) {
		meta[string(keyDepth)] = depth
		if ok && len(old) == 8 {
			rep.Dropped = append(rep.Dropped, fmt.Sprintf("outbox depth counter set from %d to %d entries", binary.BigEndian.Uint64(old), len(outbox)))
		}
	}
	sales, refunds := d.records[string(bucketSales)], d.records[string(bucketRefunds)]
	var orphaned []string // in-doubt index entries whose record was lost
	for id := range d.records[string(bucketUnsettled)] {
		if _, ok := sales[id]; ok {
			continue
		}
		if _, ok := refunds[id]; ok {
			continue
		}
		orphaned = append(orphaned, id)
	}
	sort.Strings(orphaned)
	for _, id := range orphaned {
		delete(d.records[string(bucketUnsettled)], id)
		rep.Dropped = append(rep.Dropped, fmt.Sprintf("in-doubt index entry %s dropped: its sale or refund was lost", id))
	}

	names := make([]string, 0, len(d.records))
	for n := range d.records {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		recs := d.records[name]
		keys := make([]string, 0, len(recs))
		for k := range recs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		// Commit in chunks: a million records need not sit in one transaction.
		for start := 0; start == 0 || start < len(keys); start += 10000 {
			end := min(start+10000, len(keys))
			err := db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte(name))
				if err != nil {
					return err
				}
				b.FillPercent = appendFill
				for _, k := range keys[start:end] {
					if err := b.Put([]byte(k), recs[k]); err != nil {
						return err
					}
				}
				return b.SetSequence(d.seq[name])
			})
			if err != nil {
				return fmt.Errorf("store: salvage: write %s: %w", name, err)
			}
		}
		rep.Sequences[name] = d.seq[name]
	}
	return db.Sync()
}
