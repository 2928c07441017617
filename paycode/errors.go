package paycode

import "errors"

// Errors returned by this package. Every error it returns wraps exactly one of these, so
// callers branch with errors.Is; the wrapping text adds the position (an EMVCo id, a
// BER-TLV tag) and the rule that failed, never the code, a PAN, track 2 data or a
// cryptogram. The texts are written for a clerk's screen.
//
// Permanent versus transient: every error here is permanent for the scanned code —
// scanning the same code again gives the same answer. The clerk should ask for a new
// code or another way to pay.
var (
	// ErrEmpty means the code was empty.
	ErrEmpty = errors.New("paycode: empty code")
	// ErrUnknown means the code is not a payment code that paycode recognises.
	ErrUnknown = errors.New("paycode: code not recognised")
	// ErrAmbiguous means several wallet rules matched; Result.Candidates lists them.
	// paycode never guesses between them.
	ErrAmbiguous = errors.New("paycode: code matches several schemes")
	// ErrMalformed means the code has the shape of a known kind but its structure is
	// broken: a length that overruns or is not numeric, a duplicate id, data after the
	// CRC, a truncated template, bad base64 or BER-TLV, a missing mandatory field.
	ErrMalformed = errors.New("paycode: malformed code")
	// ErrChecksum means the code's CRC (EMVCo merchant-presented) does not match
	// its content: the code was damaged or altered.
	ErrChecksum = errors.New("paycode: checksum mismatch")
	// ErrAmount means an amount is not an exact decimal with at most the currency's
	// minor-unit digits, or does not fit in int64 minor units.
	ErrAmount = errors.New("paycode: invalid amount")
	// ErrCurrency means a currency is not a three-digit ISO 4217 numeric code or is
	// not one paycode knows.
	ErrCurrency = errors.New("paycode: invalid currency")
	// ErrRules means a wallet rule table is invalid (from ParseRules or NewRules).
	ErrRules = errors.New("paycode: invalid rule table")
	// ErrBuild means Build was given a merchant-presented code it cannot encode.
	ErrBuild = errors.New("paycode: cannot build code")
)
