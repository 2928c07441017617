package paycode

// crcTable is the CRC-16/CCITT-FALSE table (polynomial 0x1021, MSB first).
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 returns the CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no
// final xor) of the bytes of s. EMVCo merchant-presented codes carry it in id 63 over the
// UTF-8 bytes of everything before the CRC value, "6304" included.
func CRC16(s string) uint16 {
	crc := uint16(0xFFFF)
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

const hexUpper = "0123456789ABCDEF"

func crcHex(c uint16) string {
	return string([]byte{hexUpper[c>>12], hexUpper[c>>8&0xF], hexUpper[c>>4&0xF], hexUpper[c&0xF]})
}
