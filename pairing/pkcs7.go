package pairing

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The certs-only answer of EST (RFC 7030, sections 4.1.3 and 4.2.3): a CMS ContentInfo
// (RFC 5652) holding a degenerate SignedData, that is one with certificates and no
// signers, DER, sent in base64.
var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

// Bounds of a certs-only bag: an enrollment answer holds the issued certificate and
// perhaps its chain, never dozens.
const (
	maxBagCerts = 16
	maxBagDER   = maxAnswer // the DER; its base64 is larger still and bounded by maxAnswer too
)

// ErrCertsOnly: the bytes are not a base64 PKCS#7 certs-only structure.
var ErrCertsOnly = errors.New("pairing: the enrollment answer is not a PKCS#7 certs-only answer (RFC 7030: base64 of a DER CMS SignedData with certificates and no signers)")

// contentInfo is CMS's ContentInfo (RFC 5652, section 3); Content is the explicit
// [0] itself (encoding/asn1 does not unwrap a RawValue's explicit tag).
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue
}

// signedData is CMS's SignedData (RFC 5652, section 5.1); the SETs are kept raw and
// checked by hand: a certs-only one has no digest algorithms' use and no signers.
type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue
}

// encapContentInfo is CMS's EncapsulatedContentInfo: data, with no content in a
// certs-only structure.
type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

// ParseCertsOnly reads an EST certs-only answer: base64 (line breaks and other ASCII
// white space are allowed anywhere, as with Content-Transfer-Encoding: base64) of a
// DER PKCS#7/CMS degenerate SignedData. It returns the certificates of the bag in the
// order they are encoded; the bag is a SET, so that order means nothing. Anything
// else (binary DER, PEM, signers, CRLs, content, trailing bytes, an empty bag, more
// than 16 certificates) is an error wrapping ErrCertsOnly.
func ParseCertsOnly(b64 []byte) ([]*x509.Certificate, error) {
	if len(b64) > maxAnswer {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCertsOnly, maxAnswer)
	}
	clean := make([]byte, 0, len(b64))
	for _, c := range b64 {
		switch c {
		case ' ', '\t', '\r', '\n', '\v', '\f':
		default:
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		return nil, fmt.Errorf("%w: the answer is empty", ErrCertsOnly)
	}
	der, err := base64.StdEncoding.Strict().DecodeString(string(clean))
	if err != nil {
		switch {
		case clean[0] == 0x30:
			return nil, fmt.Errorf("%w: binary DER, not base64", ErrCertsOnly)
		case bytes.HasPrefix(clean, []byte("-----BEGIN")):
			return nil, fmt.Errorf("%w: PEM, not base64 DER", ErrCertsOnly)
		}
		return nil, fmt.Errorf("%w: not base64: %v", ErrCertsOnly, err)
	}
	return ParseCertsOnlyDER(der)
}

// ParseCertsOnlyDER is ParseCertsOnly on the binary structure itself (no base64). The
// structure may use BER's indefinite or non-minimal lengths, as CMS allows; the
// certificates themselves must be DER.
func ParseCertsOnlyDER(der []byte) ([]*x509.Certificate, error) {
	if len(der) > maxBagDER {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCertsOnly, maxBagDER)
	}
	// CMS allows BER (RFC 5652, section 1.1): BouncyCastle-based servers send
	// indefinite lengths. What normalizeBER cannot read is parsed as it is, and
	// refused by encoding/asn1 with its reason.
	if norm, err := normalizeBER(der); err == nil {
		der = norm
	}
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertsOnly, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the structure", ErrCertsOnly, len(rest))
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("%w: content type %s, not signedData (%s)", ErrCertsOnly, ci.ContentType, oidSignedData)
	}
	if ci.Content.Class != asn1.ClassContextSpecific || ci.Content.Tag != 0 || !ci.Content.IsCompound {
		return nil, fmt.Errorf("%w: the content is not an explicit [0]", ErrCertsOnly)
	}
	var sd signedData
	rest, err = asn1.Unmarshal(ci.Content.Bytes, &sd)
	if err != nil {
		return nil, fmt.Errorf("%w: SignedData: %v", ErrCertsOnly, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the SignedData", ErrCertsOnly, len(rest))
	}
	// Version 1 is what a SignedData holding only X.509 certificates and data has
	// (RFC 5652, section 5.1).
	if sd.Version != 1 {
		return nil, fmt.Errorf("%w: SignedData version %d, not 1", ErrCertsOnly, sd.Version)
	}
	if !isSet(sd.DigestAlgorithms) {
		return nil, fmt.Errorf("%w: digestAlgorithms is not a SET", ErrCertsOnly)
	}
	if !sd.EncapContentInfo.EContentType.Equal(oidData) {
		return nil, fmt.Errorf("%w: encapsulated content type %s, not data (%s)", ErrCertsOnly, sd.EncapContentInfo.EContentType, oidData)
	}
	if len(sd.EncapContentInfo.EContent.FullBytes) != 0 {
		return nil, fmt.Errorf("%w: the SignedData carries content", ErrCertsOnly)
	}
	if len(sd.CRLs.FullBytes) != 0 && (!sd.CRLs.IsCompound || len(sd.CRLs.Bytes) != 0) {
		return nil, fmt.Errorf("%w: the SignedData carries CRLs", ErrCertsOnly)
	}
	if !isSet(sd.SignerInfos) || len(sd.SignerInfos.Bytes) != 0 {
		return nil, fmt.Errorf("%w: the SignedData has signers (not degenerate)", ErrCertsOnly)
	}
	if len(sd.Certificates.FullBytes) == 0 || !sd.Certificates.IsCompound || len(sd.Certificates.Bytes) == 0 {
		return nil, fmt.Errorf("%w: no certificates", ErrCertsOnly)
	}
	var certs []*x509.Certificate
	for rest := sd.Certificates.Bytes; len(rest) > 0; {
		if len(certs) == maxBagCerts {
			return nil, fmt.Errorf("%w: more than %d certificates", ErrCertsOnly, maxBagCerts)
		}
		var raw asn1.RawValue
		rest, err = asn1.Unmarshal(rest, &raw)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrCertsOnly, len(certs)+1, err)
		}
		// CertificateChoices: only a plain Certificate (a SEQUENCE); not the
		// obsolete extended certificates, attribute certificates or "other" ones.
		if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence || !raw.IsCompound {
			return nil, fmt.Errorf("%w: certificate %d is not an X.509 certificate (class %d, tag %d)", ErrCertsOnly, len(certs)+1, raw.Class, raw.Tag)
		}
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrCertsOnly, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func isSet(v asn1.RawValue) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSet && v.IsCompound
}

// MarshalCertsOnly returns the DER of a PKCS#7/CMS certs-only structure (a degenerate
// SignedData) holding certs. The SET's elements are sorted as DER wants.
func MarshalCertsOnly(certs ...*x509.Certificate) ([]byte, error) {
	if len(certs) == 0 || len(certs) > maxBagCerts {
		return nil, fmt.Errorf("pairing: a certs-only structure holds 1 to %d certificates, not %d", maxBagCerts, len(certs))
	}
	raws := make([][]byte, len(certs))
	for i, c := range certs {
		raws[i] = c.Raw
	}
	sort.Slice(raws, func(i, j int) bool { return bytes.Compare(raws[i], raws[j]) < 0 })
	sd, err := asn1.Marshal(signedData{
		Version:          1,
		DigestAlgorithms: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{}},
		EncapContentInfo: encapContentInfo{EContentType: oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: bytes.Join(raws, nil)},
		SignerInfos:      asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{}},
	})
	if err != nil {
		return nil, fmt.Errorf("pairing: certs-only: %w", err)
	}
	// encoding/asn1 writes a RawValue as it is, ignoring a field's tags: the
	// explicit [0] is spelt out.
	der, err := asn1.Marshal(contentInfo{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd}})
	if err != nil {
		return nil, fmt.Errorf("pairing: certs-only: %w", err)
	}
	return der, nil
}

// EncodeCertsOnly is MarshalCertsOnly in base64, in lines of 64 characters ending
// with CRLF (MIME's base64, as EST sends it).
func EncodeCertsOnly(certs ...*x509.Certificate) ([]byte, error) {
	der, err := MarshalCertsOnly(certs...)
	if err != nil {
		return nil, err
	}
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteString("\r\n")
		s = s[64:]
	}
	b.WriteString(s)
	b.WriteString("\r\n")
	return []byte(b.String()), nil
}

// maxBERDepth bounds the nesting normalizeBER follows (a certificate nests about 8 deep).
const maxBERDepth = 32

// normalizeBER re-encodes BER's constructed encodings with lengths as DER's: the
// indefinite lengths (0x80 … 00 00) and non-minimal definite lengths of a CMS
// structure as BouncyCastle-based EST servers send it. Primitive elements are copied
// as they are; it checks nothing else (encoding/asn1 and crypto/x509 do).
func normalizeBER(b []byte) ([]byte, error) {
	out, rest, err := berElement(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the structure", len(rest))
	}
	return out, nil
}

// berElement reads one BER element of b and returns its DER-length encoding and the
// bytes after it.
func berElement(b []byte, depth int) (der, rest []byte, err error) {
	if depth > maxBERDepth {
		return nil, nil, errors.New("nested too deep")
	}
	if len(b) < 2 {
		return nil, nil, errors.New("truncated")
	}
	id := b[0]
	if id&0x1f == 0x1f {
		return nil, nil, errors.New("a high tag number")
	}
	constructed := id&0x20 != 0
	l, n := int(b[1]), 2
	indefinite := false
	switch {
	case l == 0x80:
		if !constructed {
			return nil, nil, errors.New("an indefinite length on a primitive element")
		}
		indefinite = true
	case l > 0x80:
		k := l & 0x7f
		if k > 3 || len(b) < 2+k {
			return nil, nil, errors.New("a length too long")
		}
		l = 0
		for _, c := range b[2 : 2+k] {
			l = l<<8 | int(c)
		}
		n = 2 + k
	}
	body := b[n:]
	if !indefinite && l > len(body) {
		return nil, nil, errors.New("truncated")
	}
	if !constructed {
		return append(derHeader(id, l), body[:l]...), body[l:], nil
	}
	var content []byte
	if !indefinite {
		rest = body[l:]
		body = body[:l]
	}
	for {
		if indefinite {
			if len(body) >= 2 && body[0] == 0 && body[1] == 0 {
				rest = body[2:]
				break
			}
		} else if len(body) == 0 {
			break
		}
		var child []byte
		child, body, err = berElement(body, depth+1)
		if err != nil {
			return nil, nil, err
		}
		content = append(content, child...)
	}
	return append(derHeader(id, len(content)), content...), rest, nil
}

// derHeader is an identifier octet and DER's length of l.
func derHeader(id byte, l int) []byte {
	switch {
	case l < 0x80:
		return []byte{id, byte(l)}
	case l < 0x100:
		return []byte{id, 0x81, byte(l)}
	case l < 0x10000:
		return []byte{id, 0x82, byte(l >> 8), byte(l)}
	}
	return []byte{id, 0x83, byte(l >> 16), byte(l >> 8), byte(l)}
}
