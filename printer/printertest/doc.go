// Package printertest is test support for code that prints receipts, in the manner of
// net/http/httptest: it reads QR codes back from rendered receipts with gozxing ([QR])
// and with zbar's zbarimg ([Zbar]).
//
// # Caveats
//
// For tests only: its helpers call t.Skip and t.Fatal. zbarimg comes from Debian's
// zbar-tools; without it [Zbar] skips the test, or fails it when CI=true.
package printertest
