// Package escpos builds ESC/POS command streams for thermal receipt printers. It is
// pure: every method appends bytes to an in-memory buffer, nothing here opens a device,
// and it imports nothing else of Walletless, so it can be used as a library.
//
// The commands follow Epson's ESC/POS reference as implemented by the common 58 mm and
// 80 mm printers (Epson TM-T20/T88, Xprinter, Rongta, Bixolon, Sewoo, Star in ESC/POS
// mode): ESC @ (initialize), ESC ! / ESC E / ESC - / GS B / GS ! (styles), ESC a
// (justification), ESC t (code table), FS & / FS . (Kanji/Hangul/Chinese mode), GS ( k
// (native QR), GS k (Code 128), GS v 0 (raster), GS V (cut) and ESC p (drawer kick).
//
// # Caveats
//
//   - Text is written as raw bytes: the caller encodes it for the printer's code table
//     or multibyte mode (see [EncodeText]); the builder does not know what the printer
//     has selected.
//   - Many printers do not implement GS ( k; use [Builder.QRRaster] for them. Module
//     sizes above 8 dots and data above a few hundred bytes are not portable.
//   - Errors are kept inside the builder (like bufio.Writer) and reported by
//     [Builder.Err] and [Builder.Bytes]; after the first error further calls do nothing.
package escpos
