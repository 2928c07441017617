// Package scanner turns what counter scanners send into [Scan] events: bytes from a
// serial port or standard input are cut into codes (CR, LF, CRLF or an inter-byte
// timeout), an optional AIM symbology identifier ("]Q1" QR, "]C0" Code 128, "]E0"
// EAN-13, ...) becomes [Scan.Symbology], and reads of the same code within a window are
// one scan.
//
// [Run] is the whole path from a source to scans: standard input, a serial port, a
// keyboard-wedge (HID) scanner read through Linux evdev ("input:"), a V4L2 camera
// ("camera:") or image files ("images:"). It opens hardware only through package
// device, keeps a [Status] for the local API, and reconnects with backoff after an
// unplug, finding a USB scanner again by VID:PID under whatever name the kernel gave
// it. Key presses are turned into text with the scanner's layout ([Keymap]), not the
// system's.
//
// Frames are decoded by a [Decoder] (gozxing: QR, Code 128, optionally EAN-13) that
// reads a gray plane in place, a cheap pass first and a harder pass only when needed;
// [RunFrames] turns frames into scans, requiring a code that fails its own checks to
// be seen in two frames.
//
// A frame is rejected, counted and logged (never with its bytes) when it is longer
// than Config.MaxLine, is not valid UTF-8, or holds control bytes other than GS (the
// GS1 field separator). Surrounding blanks and control bytes are trimmed first.
//
// # Caveats
//
//   - With Source "stdin", a Read that is blocked on a terminal cannot be interrupted:
//     Run returns when its context ends, but its reading goroutine ends only at the
//     next line or end of input. Pipes and pseudo terminals are interrupted through a
//     read deadline.
//   - Duplicate suppression compares each code with the previous one only; a code
//     alternating with another one is not suppressed.
//   - With line framing, bytes without a terminator that sit idle on a serial port for
//     Config.PartialTimeout are dropped (a scanner whose suffix is "none" needs
//     FramingGap).
//   - A Decoder is not safe for concurrent use: one per goroutine. A frame from a
//     camera is only valid until the source's next Next.
//   - The decoder's pre-check skips frames with nothing code-like in about a
//     millisecond. Only with DecodeOptions.NoPrecheck does the harder full-frame pass
//     run (tens to hundreds of milliseconds on a frame without a code); RunFrames
//     then runs it on one frame in FrameConfig.HarderEvery.
//   - Scan.Text is a payment code. Log it only through paycode.Mask.
package scanner
