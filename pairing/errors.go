package pairing

import "errors"

// Errors a pairing attempt is refused with; each wraps into a message that says why.
var (
	// ErrFormat: the text is not a well-formed pairing QR.
	ErrFormat = errors.New("pairing: not a well-formed pairing QR")
	// ErrForged: the signature does not verify (bad signature or edited payload).
	ErrForged = errors.New("pairing: forged pairing QR: the signature does not match")
	// ErrUnknownKey: signed by a key that is not in fleet.trusted_keys.
	ErrUnknownKey = errors.New("pairing: pairing QR signed by a key this terminal does not trust")
	// ErrNoTrustedKey: the terminal has no fleet key to check a pairing QR with.
	ErrNoTrustedKey = errors.New("pairing: no fleet key configured (fleet.trusted_keys): a pairing QR cannot be checked")
	// ErrExpired: past the QR's expiry.
	ErrExpired = errors.New("pairing: pairing QR expired")
	// ErrReused: the QR was used before (this terminal's record, or the signer's).
	ErrReused = errors.New("pairing: pairing QR already used")
	// ErrPin: the enrollment server's certificate does not chain to the CA the QR pins.
	ErrPin = errors.New("pairing: enrollment server not trusted: its certificate does not chain to the CA fingerprint in the pairing QR")
	// ErrRefused: the signer refused the enrollment (a wrong, used or expired secret).
	ErrRefused = errors.New("pairing: enrollment refused by the signer")
)
