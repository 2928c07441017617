// Package printer prints Walletless receipts on ESC/POS thermal printers. It owns the
// receipt layout ([EncodeReceipt]), the printer model profiles ([Profile]), the
// transports ([Open]: serial ports, USB printer class devices, TCP port 9100, files,
// and the PNG-rendering emulator) and a print [Queue] that keeps receipts while the
// printer is out of paper or away, so a stuck printer never blocks a sale.
//
// The byte-level encoder lives in printer/escpos and the renderer in printer/emulator;
// this package ties them to the receipt the payment engine hands over. It imports
// paycode (for currency exponents) and nothing else of Walletless.
//
// # Caveats
//
//   - Amounts are formatted from int64 minor units with the ISO 4217 exponent; an
//     unknown currency is an error, not a guess.
//   - A currency symbol the printer's code table cannot print (₩ on PC858) falls back
//     to the ISO code ("KRW 12,000").
//   - MaskedCode is printed as given: the caller masks it. The package logs sale ids and
//     byte counts, never receipt contents.
//   - Serial writes cannot be interrupted by the kernel once blocked; on a write timeout
//     the port is closed and reopened for the next receipt.
//   - A receipt torn by a paper end in the middle is printed again whole when the paper
//     is back: the customer may get a partial copy as well.
//   - The [Queue] lives in memory: receipts waiting when posd stops are not printed
//     after a restart, but every sale is in the store and can be reprinted by id.
//   - Printers that do not answer DLE EOT need "?status=off" on their spec, or every
//     job fails as not ready.
package printer
