package emulator

// drawCJK draws r into a full-width cell; without a CJK font it reports false.
func drawCJK(bm *bitmap, r rune, bold bool) bool { return false }
