package scanner

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// External decoders measured on the same frames, when installed (Debian packages
// zxing-cpp-tools and zbar-tools). Both are restricted to the formats we read.
var externalTools = []struct {
	name string
	bin  string
	args []string
}{
	{"zxing-cpp", "ZXingReader", []string{"-1", "-format", "QRCode,Code128"}},
	{"zbar", "zbarimg", []string{"--nodbus", "-q", "-Sdisable", "-Sqrcode.enable", "-Scode128.enable"}},
}

// runTool decodes files with an external tool and returns what it read per file
// ("" for nothing). zbarimg does not name files in its output, so it runs once per
// file when per-file results are wanted.
func runTool(tb testing.TB, name, bin string, args []string, files []string, perFile bool) ([]string, error) {
	tb.Helper()
	res := make([]string, len(files))
	if name == "zbar" && perFile {
		for i, f := range files {
			out, _ := exec.Command(bin, append(args, f)...).Output() // exit 4: nothing found
			if line, _, _ := strings.Cut(string(out), "\n"); line != "" {
				_, res[i], _ = strings.Cut(line, ":")
			}
		}
		return res, nil
	}
	out, err := exec.Command(bin, append(args, files...)...).Output()
	if err != nil && name != "zbar" { // zbarimg exits 4 when a file has no code
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if name == "zbar" {
		// one line per code found, files not named: count only
		for i := 0; i < len(lines) && i < len(res) && lines[i] != ""; i++ {
			_, res[i], _ = strings.Cut(lines[i], ":")
		}
		return res, nil
	}
	byFile := map[string]string{}
	for _, l := range lines {
		f, rest, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(rest, "None") {
			continue
		}
		if _, text, ok := strings.Cut(rest, " "); ok && byFile[f] == "" {
			byFile[f] = strings.Trim(text, `"`)
		}
	}
	for i, f := range files {
		res[i] = byFile[f]
	}
	return res, nil
}

func writeFrame(tb testing.TB, dir, name string, g Gray) string {
	tb.Helper()
	var b bytes.Buffer
	if err := WritePGM(&b, g); err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestReadsWhatZbarReads decodes frames that zbar reads and checks that we read
// them too (skipped without zbarimg).
func TestReadsWhatZbarReads(t *testing.T) {
	bin, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg not installed (apt-get install zbar-tools)")
	}
	qr := qrModules(t, testQR)
	c128 := code128Modules(t, test128)
	frames := map[string]Gray{}
	sizes := [][2]int{{640, 480}, {1280, 720}}
	if raceEnabled {
		sizes = sizes[:1]
	}
	for _, sz := range sizes {
		w, h := sz[0], sz[1]
		for name, s := range map[string]synth{
			"qr":            {code: qr, module: 5, noise: 10, seed: 1},
			"qr-small":      {code: qr, module: 2, noise: 6, seed: 2},
			"qr-rot45":      {code: qr, module: 5, angle: 45, noise: 10, seed: 3},
			"qr-blur":       {code: qr, module: 3, blur: true, noise: 6, seed: 4},
			"qr-lowcontr":   {code: qr, module: 5, dark: 110, light: 150, noise: 4, seed: 5},
			"qr-inverted":   {code: qr, module: 5, dark: 220, light: 30, noise: 6, seed: 6},
			"c128":          {code: c128, module: 3, barH: h / 3, noise: 10, seed: 7},
			"c128-thin":     {code: c128, module: 1.5, barH: h / 4, noise: 4, seed: 8},
			"c128-rot90":    {code: c128, module: 2, barH: w / 3, angle: 90, noise: 8, seed: 9},
			"c128-rot10":    {code: c128, module: 3, barH: h / 2, angle: 10, noise: 8, seed: 10},
			"c128-lowcontr": {code: c128, module: 3, barH: h / 3, dark: 100, light: 150, noise: 4, seed: 11},
		} {
			s.w, s.h = w, h
			frames[fmt.Sprintf("%s-%dx%d", name, w, h)] = s.render()
		}
	}
	dir := t.TempDir()
	var names, files []string
	for name, g := range frames {
		names = append(names, name)
		files = append(files, writeFrame(t, dir, name+".pgm", g))
	}
	zbar, err := runTool(t, "zbar", bin, externalTools[1].args, files, true)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DecodeOptions{})
	zbarReads, ours := 0, 0
	for i, name := range names {
		r, err := d.Decode(frames[name])
		if err == nil {
			ours++
		}
		if zbar[i] == "" {
			continue
		}
		zbarReads++
		if err != nil {
			t.Errorf("%s: zbar reads %q, we read nothing", name, zbar[i])
		} else if r.Text != zbar[i] {
			t.Errorf("%s: zbar reads %q, we read %q", name, zbar[i], r.Text)
		}
	}
	t.Logf("%d frames: zbar read %d, we read %d", len(frames), zbarReads, ours)
}
