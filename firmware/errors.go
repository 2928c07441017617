package firmware

import "errors"

// Errors of reading, checking and installing an artifact. Every refusal wraps one of
// them so a caller (and a job report) can tell the reasons apart with errors.Is. All
// of them are permanent for the artifact at hand: retrying the same bytes gives the
// same answer. Only ErrDownload is transient.
var (
	ErrMalformed    = errors.New("firmware: malformed artifact")
	ErrTruncated    = errors.New("firmware: artifact is truncated")
	ErrSignature    = errors.New("firmware: bad manifest signature")
	ErrUntrustedKey = errors.New("firmware: signed by a key this device does not trust")
	ErrDowngrade    = errors.New("firmware: below the device's version floor")
	ErrArch         = errors.New("firmware: built for another architecture")
	ErrBoard        = errors.New("firmware: built for another board")
	ErrPayloadHash  = errors.New("firmware: payload does not match its manifest hash")
	ErrNoKeys       = errors.New("firmware: no trusted keys are configured")
	ErrBusy         = errors.New("firmware: an update is already in progress")
	ErrDownload     = errors.New("firmware: download failed")
	ErrNotFound     = errors.New("firmware: not found")
)
