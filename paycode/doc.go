// Package paycode identifies payment codes scanned at a counter: customer-presented
// wallet one-time codes (Alipay, WeChat Pay, ...), EMVCo consumer-presented QR and
// merchant-presented EMVCo/JPQR codes. It is pure: no I/O, and it imports nothing else
// of Walletless, so other projects can use it as a library.
//
// Every Result carries a masked form of the code (last four characters and a short
// hash) for logs and receipts; nothing in this package formats a full code into an
// error string.
package paycode
