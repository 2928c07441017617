package scanner

import "fmt"

// Framing says how a byte stream is cut into codes.
type Framing string

// Framings.
const (
	// FramingAuto ends a code at CR, LF or CRLF (a LF right after a CR is swallowed).
	// It is the default and matches every scanner suffix setting except "none".
	FramingAuto Framing = "auto"
	FramingCR   Framing = "cr"   // a code ends at CR; LF is data (and is later rejected as a control byte)
	FramingLF   Framing = "lf"   // a code ends at LF; a CR before it is trimmed
	FramingCRLF Framing = "crlf" // a code ends at CR LF; a lone CR or LF is data
	// FramingGap ends a code when no byte arrived for Config.Gap (inter-byte timeout),
	// for scanners configured with no suffix. CR and LF still end a code.
	FramingGap Framing = "gap"
)

// ParseFraming checks a framing name; "" is FramingAuto.
func ParseFraming(s string) (Framing, error) {
	switch f := Framing(s); f {
	case "":
		return FramingAuto, nil
	case FramingAuto, FramingCR, FramingLF, FramingCRLF, FramingGap:
		return f, nil
	}
	return "", fmt.Errorf("scanner: unknown framing %q (want auto, cr, lf, crlf or gap)", s)
}

// Framer cuts a byte stream into frames. It holds at most max bytes: a frame longer
// than that is dropped whole (up to its terminator) and reported once through
// Oversize. The zero Framer is not usable; use NewFramer.
type Framer struct {
	mode Framing
	max  int
	buf  []byte
	// drop is true while the rest of an oversize frame is skipped.
	drop bool
	// cr is true when the previous byte was a CR (for CRLF handling).
	cr bool
	// Oversize is called once for each dropped oversize frame, with the number of
	// bytes that had been buffered when the limit was hit. May be nil.
	Oversize func(n int)
}

// NewFramer returns a Framer for mode that drops frames longer than max bytes
// (max <= 0 means 512).
func NewFramer(mode Framing, max int) *Framer {
	if max <= 0 {
		max = DefaultMaxLine
	}
	if mode == "" {
		mode = FramingAuto
	}
	return &Framer{mode: mode, max: max, buf: make([]byte, 0, min(max, 4096))}
}

// Feed consumes p and calls emit for every complete non-empty frame, without its
// terminator. The slice passed to emit is only valid during the call.
func (f *Framer) Feed(p []byte, emit func(frame []byte)) {
	for _, b := range p {
		prevCR := f.cr
		f.cr = b == '\r'
		switch f.mode {
		case FramingAuto, FramingGap:
			if b == '\n' && prevCR {
				continue // second half of CRLF
			}
			if b == '\r' || b == '\n' {
				f.end(emit)
				continue
			}
		case FramingCR:
			if b == '\r' {
				f.end(emit)
				continue
			}
		case FramingLF:
			if b == '\n' {
				if n := len(f.buf); n > 0 && f.buf[n-1] == '\r' {
					f.buf = f.buf[:n-1]
				}
				f.end(emit)
				continue
			}
		case FramingCRLF:
			if b == '\n' && prevCR {
				if n := len(f.buf); n > 0 && f.buf[n-1] == '\r' {
					f.buf = f.buf[:n-1]
				}
				f.end(emit)
				continue
			}
		}
		f.add(b)
	}
}

// Flush ends the pending frame, if any, as if a terminator had arrived: the inter-byte
// timeout of FramingGap, or end of input.
func (f *Framer) Flush(emit func(frame []byte)) {
	f.cr = false
	f.end(emit)
}

// Pending reports how many bytes of an unfinished frame are held.
func (f *Framer) Pending() int { return len(f.buf) }

// Discard forgets the unfinished frame without emitting it, e.g. after a reconnect.
func (f *Framer) Discard() {
	f.buf = f.buf[:0]
	f.drop = false
	f.cr = false
}

func (f *Framer) add(b byte) {
	if f.drop {
		return
	}
	if len(f.buf) >= f.max {
		if f.Oversize != nil {
			f.Oversize(len(f.buf))
		}
		f.drop = true
		f.buf = f.buf[:0]
		return
	}
	f.buf = append(f.buf, b)
}

func (f *Framer) end(emit func([]byte)) {
	if f.drop {
		f.drop = false
		f.buf = f.buf[:0]
		return
	}
	if len(f.buf) > 0 {
		emit(f.buf)
	}
	f.buf = f.buf[:0]
}
