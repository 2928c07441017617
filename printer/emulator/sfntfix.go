package emulator

import (
	"encoding/binary"
	"errors"
	"sort"
)

// extractFont returns font index of a TrueType collection (or the font itself) as a
// standalone font file whose tables start on four-byte boundaries. Some fonts, the
// WenQuanYi collections among them, have unaligned tables that golang.org/x/image's
// parser rejects although other renderers accept them.
func extractFont(data []byte, index int) ([]byte, error) {
	be := binary.BigEndian
	if len(data) < 12 {
		return nil, errors.New("emulator: font too short")
	}
	off := 0
	if string(data[:4]) == "ttcf" {
		n := int(be.Uint32(data[8:12]))
		if index < 0 || index >= n || len(data) < 12+4*n {
			return nil, errors.New("emulator: bad font collection")
		}
		off = int(be.Uint32(data[12+4*index:]))
	}
	if off+12 > len(data) {
		return nil, errors.New("emulator: bad font offset")
	}
	numTables := int(be.Uint16(data[off+4:]))
	dir := off + 12
	if dir+16*numTables > len(data) {
		return nil, errors.New("emulator: bad table directory")
	}
	type rec struct {
		tag, sum []byte
		o, n     int
	}
	recs := make([]rec, numTables)
	for i := range recs {
		r := data[dir+16*i:]
		recs[i] = rec{tag: r[0:4], sum: r[4:8], o: int(be.Uint32(r[8:])), n: int(be.Uint32(r[12:]))}
		if recs[i].o < 0 || recs[i].n < 0 || recs[i].o+recs[i].n > len(data) {
			return nil, errors.New("emulator: table outside the font")
		}
	}
	sort.Slice(recs, func(i, j int) bool { return string(recs[i].tag) < string(recs[j].tag) })
	head := 12 + 16*numTables
	size := head
	for _, r := range recs {
		size += (r.n + 3) &^ 3
	}
	out := make([]byte, size)
	copy(out[:12], data[off:off+12])
	pos := head
	for i, r := range recs {
		d := out[12+16*i:]
		copy(d[0:4], r.tag)
		copy(d[4:8], r.sum)
		be.PutUint32(d[8:], uint32(pos))
		be.PutUint32(d[12:], uint32(r.n))
		copy(out[pos:], data[r.o:r.o+r.n])
		pos += (r.n + 3) &^ 3
	}
	return out, nil
}
