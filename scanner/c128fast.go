// Portions follow ZXing's Code128Reader (Copyright 2008 ZXing authors) and its Go port
// gozxing (Copyright 2019 makiuchi-d), both under the Apache License 2.0.

package scanner

import (
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"
)

// c128Fast is gozxing's Code 128 row decoder (oned.code128Reader.DecodeRow, without
// the ASSUME_GS1 hint, which the decoder never sets) with its buffers kept from line
// to line and no result object: gozxing's allocates 11 to 17 times for a read and an
// exception for every line that is not a code, and its API has no way to reuse
// them. It decides exactly as gozxing's does (same start search, same pattern
// variance limits, same code sets, shifts and FNC4 upper mode, same checksum and
// quiet zone rules): TestC128FastMatchesGozxing and FuzzC128Fast compare them.
type c128Fast struct {
	counters [6]int
	text     []byte
	last     string // the last text returned (a repeat costs no string)
}

// c128Patterns are Code 128's symbol patterns (module widths), 0 to 106 (stop).
var c128Patterns = [][]int{
	{2, 1, 2, 2, 2, 2}, // 0
	{2, 2, 2, 1, 2, 2},
	{2, 2, 2, 2, 2, 1},
	{1, 2, 1, 2, 2, 3},
	{1, 2, 1, 3, 2, 2},
	{1, 3, 1, 2, 2, 2}, // 5
	{1, 2, 2, 2, 1, 3},
	{1, 2, 2, 3, 1, 2},
	{1, 3, 2, 2, 1, 2},
	{2, 2, 1, 2, 1, 3},
	{2, 2, 1, 3, 1, 2}, // 10
	{2, 3, 1, 2, 1, 2},
	{1, 1, 2, 2, 3, 2},
	{1, 2, 2, 1, 3, 2},
	{1, 2, 2, 2, 3, 1},
	{1, 1, 3, 2, 2, 2}, // 15
	{1, 2, 3, 1, 2, 2},
	{1, 2, 3, 2, 2, 1},
	{2, 2, 3, 2, 1, 1},
	{2, 2, 1, 1, 3, 2},
	{2, 2, 1, 2, 3, 1}, // 20
	{2, 1, 3, 2, 1, 2},
	{2, 2, 3, 1, 1, 2},
	{3, 1, 2, 1, 3, 1},
	{3, 1, 1, 2, 2, 2},
	{3, 2, 1, 1, 2, 2}, // 25
	{3, 2, 1, 2, 2, 1},
	{3, 1, 2, 2, 1, 2},
	{3, 2, 2, 1, 1, 2},
	{3, 2, 2, 2, 1, 1},
	{2, 1, 2, 1, 2, 3}, // 30
	{2, 1, 2, 3, 2, 1},
	{2, 3, 2, 1, 2, 1},
	{1, 1, 1, 3, 2, 3},
	{1, 3, 1, 1, 2, 3},
	{1, 3, 1, 3, 2, 1}, // 35
	{1, 1, 2, 3, 1, 3},
	{1, 3, 2, 1, 1, 3},
	{1, 3, 2, 3, 1, 1},
	{2, 1, 1, 3, 1, 3},
	{2, 3, 1, 1, 1, 3}, // 40
	{2, 3, 1, 3, 1, 1},
	{1, 1, 2, 1, 3, 3},
	{1, 1, 2, 3, 3, 1},
	{1, 3, 2, 1, 3, 1},
	{1, 1, 3, 1, 2, 3}, // 45
	{1, 1, 3, 3, 2, 1},
	{1, 3, 3, 1, 2, 1},
	{3, 1, 3, 1, 2, 1},
	{2, 1, 1, 3, 3, 1},
	{2, 3, 1, 1, 3, 1}, // 50
	{2, 1, 3, 1, 1, 3},
	{2, 1, 3, 3, 1, 1},
	{2, 1, 3, 1, 3, 1},
	{3, 1, 1, 1, 2, 3},
	{3, 1, 1, 3, 2, 1}, // 55
	{3, 3, 1, 1, 2, 1},
	{3, 1, 2, 1, 1, 3},
	{3, 1, 2, 3, 1, 1},
	{3, 3, 2, 1, 1, 1},
	{3, 1, 4, 1, 1, 1}, // 60
	{2, 2, 1, 4, 1, 1},
	{4, 3, 1, 1, 1, 1},
	{1, 1, 1, 2, 2, 4},
	{1, 1, 1, 4, 2, 2},
	{1, 2, 1, 1, 2, 4}, // 65
	{1, 2, 1, 4, 2, 1},
	{1, 4, 1, 1, 2, 2},
	{1, 4, 1, 2, 2, 1},
	{1, 1, 2, 2, 1, 4},
	{1, 1, 2, 4, 1, 2}, // 70
	{1, 2, 2, 1, 1, 4},
	{1, 2, 2, 4, 1, 1},
	{1, 4, 2, 1, 1, 2},
	{1, 4, 2, 2, 1, 1},
	{2, 4, 1, 2, 1, 1}, // 75
	{2, 2, 1, 1, 1, 4},
	{4, 1, 3, 1, 1, 1},
	{2, 4, 1, 1, 1, 2},
	{1, 3, 4, 1, 1, 1},
	{1, 1, 1, 2, 4, 2}, // 80
	{1, 2, 1, 1, 4, 2},
	{1, 2, 1, 2, 4, 1},
	{1, 1, 4, 2, 1, 2},
	{1, 2, 4, 1, 1, 2},
	{1, 2, 4, 2, 1, 1}, // 85
	{4, 1, 1, 2, 1, 2},
	{4, 2, 1, 1, 1, 2},
	{4, 2, 1, 2, 1, 1},
	{2, 1, 2, 1, 4, 1},
	{2, 1, 4, 1, 2, 1}, // 90
	{4, 1, 2, 1, 2, 1},
	{1, 1, 1, 1, 4, 3},
	{1, 1, 1, 3, 4, 1},
	{1, 3, 1, 1, 4, 1},
	{1, 1, 4, 1, 1, 3}, // 95
	{1, 1, 4, 3, 1, 1},
	{4, 1, 1, 1, 1, 3},
	{4, 1, 1, 3, 1, 1},
	{1, 1, 3, 1, 4, 1},
	{1, 1, 4, 1, 3, 1}, // 100
	{3, 1, 1, 1, 4, 1},
	{4, 1, 1, 1, 3, 1},
	{2, 1, 1, 4, 1, 2},
	{2, 1, 1, 2, 1, 4},
	{2, 1, 1, 2, 3, 2}, // 105
	{2, 3, 3, 1, 1, 1, 2},
}

const (
	c128MaxAvgVariance        = 0.25
	c128MaxIndividualVariance = 0.7
	c128Shift                 = 98
	c128CodeC                 = 99
	c128CodeB                 = 100
	c128CodeA                 = 101
	c128FNC1                  = 102
	c128FNC2                  = 97
	c128FNC3                  = 96
	c128FNC4A                 = 101
	c128FNC4B                 = 100
	c128StartA                = 103
	c128StartB                = 104
	c128StartC                = 105
	c128Stop                  = 106
)

// findStart is code128FindStartPattern: the start pattern's first and end index
// and its code.
func (c *c128Fast) findStart(row *gozxing.BitArray) (int, int, int, bool) {
	width := row.GetSize()
	offset := row.GetNextSet(0)
	pos := 0
	counters := c.counters[:]
	clear(counters)
	start := offset
	white := false
	for i := offset; i < width; i++ {
		if row.Get(i) != white {
			counters[pos]++
			continue
		}
		if pos == len(counters)-1 {
			best, bestVar := -1, c128MaxAvgVariance
			for code := c128StartA; code <= c128StartC; code++ {
				if v := oned.PatternMatchVariance(counters, c128Patterns[code], c128MaxIndividualVariance); v < bestVar {
					best, bestVar = code, v
				}
			}
			// a quiet zone before the start pattern, half its width
			if best >= 0 {
				if ok, _ := row.IsRange(max(0, start-(i-start)/2), start, false); ok {
					return start, i, best, true
				}
			}
			start += counters[0] + counters[1]
			copy(counters, counters[2:2+pos-1])
			counters[pos-1], counters[pos] = 0, 0
			pos--
		} else {
			pos++
		}
		counters[pos] = 1
		white = !white
	}
	return 0, 0, 0, false
}

// record is oned.RecordPattern without its error values.
func (c *c128Fast) record(row *gozxing.BitArray, start int) bool {
	counters := c.counters[:]
	clear(counters)
	end := row.GetSize()
	if start >= end {
		return false
	}
	white := !row.Get(start)
	pos, i := 0, start
	for ; i < end; i++ {
		if row.Get(i) != white {
			counters[pos]++
			continue
		}
		pos++
		if pos == len(counters) {
			break
		}
		counters[pos] = 1
		white = !white
	}
	return pos == len(counters) || (pos == len(counters)-1 && i == end)
}

// decodeCode is code128DecodeCode.
func (c *c128Fast) decodeCode(row *gozxing.BitArray, start int) (int, bool) {
	if !c.record(row, start) {
		return 0, false
	}
	best, bestVar := -1, c128MaxAvgVariance
	for code, p := range c128Patterns {
		if v := oned.PatternMatchVariance(c.counters[:], p, c128MaxIndividualVariance); v < bestVar {
			best, bestVar = code, v
		}
	}
	return best, best >= 0
}

// decodeRow reads a Code 128 code on row as gozxing's DecodeRow does and returns
// its text.
func (c *c128Fast) decodeRow(row *gozxing.BitArray) (string, bool) {
	_, startEnd, startCode, ok := c.findStart(row)
	if !ok {
		return "", false
	}
	var set int
	switch startCode {
	case c128StartA:
		set = c128CodeA
	case c128StartB:
		set = c128CodeB
	default:
		set = c128CodeC
	}
	done, nextShifted := false, false
	result := c.text[:0]
	lastStart, nextStart := 0, startEnd
	lastCode, code := 0, 0
	checksum, mult := startCode, 0
	printable, upper, shiftUpper := true, false, false
	for !done {
		unshift := nextShifted
		nextShifted = false
		lastCode = code
		if code, ok = c.decodeCode(row, nextStart); !ok {
			return "", false
		}
		if code != c128Stop {
			printable = true
			mult++
			checksum += mult * code
		}
		lastStart = nextStart
		for _, n := range c.counters {
			nextStart += n
		}
		if code == c128StartA || code == c128StartB || code == c128StartC {
			return "", false
		}
		// the character of a code in set A or B (in the upper half after FNC4)
		char := func(v int) byte {
			if shiftUpper == upper {
				return byte(v)
			}
			return byte(v + 128)
		}
		fnc4 := func() {
			switch {
			case !upper && shiftUpper:
				upper, shiftUpper = true, false
			case upper && shiftUpper:
				upper, shiftUpper = false, false
			default:
				shiftUpper = true
			}
		}
		switch set {
		case c128CodeA:
			switch {
			case code < 64:
				result = append(result, char(' '+code))
				shiftUpper = false
			case code < 96:
				result = append(result, char(code-64))
				shiftUpper = false
			default:
				if code != c128Stop {
					printable = false
				}
				switch code {
				case c128FNC4A:
					fnc4()
				case c128Shift:
					nextShifted, set = true, c128CodeB
				case c128CodeB:
					set = c128CodeB
				case c128CodeC:
					set = c128CodeC
				case c128Stop:
					done = true
				}
			}
		case c128CodeB:
			if code < 96 {
				result = append(result, char(' '+code))
				shiftUpper = false
				break
			}
			if code != c128Stop {
				printable = false
			}
			switch code {
			case c128FNC4B:
				fnc4()
			case c128Shift:
				nextShifted, set = true, c128CodeA
			case c128CodeA:
				set = c128CodeA
			case c128CodeC:
				set = c128CodeC
			case c128Stop:
				done = true
			}
		case c128CodeC:
			if code < 100 {
				result = append(result, '0'+byte(code/10), '0'+byte(code%10))
				break
			}
			if code != c128Stop {
				printable = false
			}
			switch code {
			case c128CodeA:
				set = c128CodeA
			case c128CodeB:
				set = c128CodeB
			case c128Stop:
				done = true
			}
		}
		if unshift {
			if set == c128CodeA {
				set = c128CodeB
			} else {
				set = c128CodeA
			}
		}
	}
	c.text = result
	// the stop pattern's last bar, then a quiet zone of half a symbol
	nextStart = row.GetNextUnset(nextStart)
	if ok, _ := row.IsRange(nextStart, min(row.GetSize(), nextStart+(nextStart-lastStart)/2), false); !ok {
		return "", false
	}
	checksum -= mult * lastCode
	if checksum%103 != lastCode || len(result) == 0 {
		return "", false
	}
	if printable { // the check symbol was read as a character: drop it
		if set == c128CodeC {
			result = result[:len(result)-2]
		} else {
			result = result[:len(result)-1]
		}
	}
	if string(result) != c.last {
		c.last = string(result)
	}
	return c.last, true
}
