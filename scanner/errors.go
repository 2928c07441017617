package scanner

import "errors"

// Errors for frames that are not turned into scans. They never contain the frame's
// bytes: a frame may be a payment code.
var (
	// ErrOversize means a frame was longer than Config.MaxLine and was dropped.
	ErrOversize = errors.New("scanner: line longer than the maximum, dropped")
	// ErrNotUTF8 means a frame was not valid UTF-8 and was dropped.
	ErrNotUTF8 = errors.New("scanner: line is not valid UTF-8, dropped")
	// ErrControl means a frame held control bytes (other than GS, the GS1 separator)
	// and was dropped.
	ErrControl = errors.New("scanner: line holds control bytes, dropped")
	// ErrPartial means bytes without a line terminator sat idle and were dropped; the
	// scanner's suffix setting probably does not match Config.Framing.
	ErrPartial = errors.New("scanner: unterminated line discarded (check the scanner's suffix or use framing gap)")
	// ErrConfig means the Config is invalid. It is permanent.
	ErrConfig = errors.New("scanner: bad configuration")
)
