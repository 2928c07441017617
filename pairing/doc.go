// Package pairing is zero-touch pairing of a new terminal by scanning a QR: the
// pairing QR's format and its signature by the fleet key (Parse, Sign, Verify), the
// device's own key pair and certificate request, the enrollment client that pins the
// fleet's certificate authority by the fingerprint the QR carries (Enroll: EST's
// simpleenroll, RFC 7030), EST's certs-only PKCS#7 answer (ParseCertsOnly,
// MarshalCertsOnly), the pairing result saved under the data directory (Save, Load,
// Reset, the used-nonce record), and the core of the reference signer (Signer:
// one-time secrets bound to a device id, marked used durably before an answer; an EST
// server for simpleenroll and cacerts).
//
// The pairing QR is one line of text the counter scanner sends:
//
//	WLPAIR1:<payload, base64url JSON>.<key id, 16 hex>.<ed25519 signature, base64url>
//
// The signature is made with the fleet's minisign key (posfleet keygen) over the bytes
// "WLPAIR1:<payload>" and checked against fleet.trusted_keys. docs/fleet.md, "Zero-touch
// pairing and enrollment", describes the fields and the enrollment step.
//
// # Caveats
//
// The QR carries a one-time enrollment secret: never log or print the text in full
// (Redact). A box without a real-time clock cannot tell an expired QR by itself: the
// device checks the expiry only when its clock is synchronized; the signer's check is
// the authoritative one.
package pairing
