package scanner

// aimSymbologies maps the code character of an AIM symbology identifier ("]" + code
// character + modifier, ISO/IEC 15424) to our symbology names.
var aimSymbologies = map[byte]string{
	'A': "code39",
	'C': "code128",
	'd': "datamatrix",
	'E': "ean13", // ]E0 EAN-13/UPC-A; ]E4 is EAN-8 (see aimSymbology)
	'e': "gs1databar",
	'F': "codabar",
	'G': "code93",
	'H': "code11",
	'I': "itf",
	'L': "pdf417",
	'M': "msi",
	'Q': "qr",
	'R': "iata2of5",
	'S': "d2of5",
	'X': "other",
	'z': "aztec",
}

// aimSymbology parses an AIM identifier at the start of frame. It returns the
// symbology name and the identifier's length (3), or "", 0 if frame does not start
// with a valid identifier.
func aimSymbology(frame []byte) (string, int) {
	if len(frame) < 3 || frame[0] != ']' {
		return "", 0
	}
	name, ok := aimSymbologies[frame[1]]
	if !ok {
		return "", 0
	}
	m := frame[2]
	if !(m >= '0' && m <= '9' || m >= 'A' && m <= 'Z') {
		return "", 0
	}
	switch {
	case frame[1] == 'E' && m == '4':
		name = "ean8"
	case frame[1] == 'C' && m == '1':
		name = "gs1-128"
	}
	return name, 3
}

// AIMMode says whether frames are checked for an AIM symbology identifier prefix.
type AIMMode string

// AIM modes.
const (
	// AIMAuto strips a valid AIM prefix ("]Q1", "]C0", ...) into Scan.Symbology. No
	// payment code starts with "]", so this is the safe default.
	AIMAuto AIMMode = "auto"
	// AIMOff keeps every byte in Scan.Text and leaves Symbology empty.
	AIMOff AIMMode = "off"
)
