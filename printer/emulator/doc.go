// Package emulator interprets an ESC/POS command stream and renders the paper it would
// print as an image at printer resolution (576 dots wide for 80 mm paper, 384 for
// 58 mm, 8 dots per mm). It lets a technician or a test see a receipt without a printer.
//
// It understands everything package escpos emits and the common commands of other
// encoders: ESC @, ESC !, ESC E/G, ESC -, ESC a, ESC d/J, ESC 2/3, ESC t, ESC M, ESC SP,
// ESC $, ESC \, ESC *, ESC p, GS !, GS B, GS L/W, GS V, GS v 0, GS ( k (QR), GS k
// (UPC/EAN/Code 39/ITF/Codabar/Code 93/Code 128), GS H/h/w, FS &/FS ./FS !, DLE EOT and
// the other real-time commands. QR codes and barcodes are redrawn module by module so
// that scanners (gozxing, zbar, phones) read them from the image. Text is drawn with the
// Go Mono font in 12x24-dot cells (font A) or 9x17 (font B); Kanji/Hangul/Chinese
// characters (FS & mode, decoded per [Options].Multibyte) in 24x24 cells with a CJK
// font from the system (see [CJKFontPaths] and [CJKFontEnv]).
//
// # Caveats
//
//   - Unknown or malformed commands are skipped and reported as [Warning]s; a truncated
//     stream ends the rendering with a warning. Rendering never fails on input bytes.
//   - The paper is capped at [Options].MaxHeight dots; garbage that feeds kilometres of
//     paper is cut off with a warning rather than allocating without bound.
//   - Barcodes are re-encoded from their content with gozxing, so the bars may use other
//     Code 128 code sets than a real printer would; the content is the same.
//   - Page mode, downloaded/NV images, upside-down and rotated printing are not drawn.
//   - CJK glyphs come from a font installed on the machine (Debian's
//     fonts-wqy-microhei is the first choice; its tables are realigned in memory for
//     golang.org/x/image). Without one they are drawn as boxes, with a warning; the
//     transcript in Result.Text is right either way.
//   - Motion units are taken as one dot (203 dpi printers): ESC 3, ESC J and ESC $
//     values written for 180 dpi or 360-unit printers render at a different scale.
package emulator
