package printer

import "errors"

// Errors of the printer package. Errors from Print wrap one of the transient ones when
// trying again later may succeed.
var (
	// ErrCurrency: the receipt's currency is not a known ISO 4217 code (permanent).
	ErrCurrency = errors.New("printer: unknown currency")
	// ErrSpec: the printer spec given to Open is malformed (permanent).
	ErrSpec = errors.New("printer: bad printer spec")
	// ErrName: the job name is empty or not file-safe (permanent).
	ErrName = errors.New("printer: bad job name")
	// ErrTimeout: the printer did not take the bytes in time (transient).
	ErrTimeout = errors.New("printer: write timeout")
	// ErrClosed: the printer or queue was closed.
	ErrClosed = errors.New("printer: closed")
	// ErrNotReady: the printer reports paper out, cover open or offline (transient).
	ErrNotReady = errors.New("printer: not ready")
	// ErrQueueFull: the print queue holds its maximum number of jobs.
	ErrQueueFull = errors.New("printer: queue full")
)
