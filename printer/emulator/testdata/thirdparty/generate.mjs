// Generates esc-pos-encoder-*.bin with the npm package esc-pos-encoder (MIT), so the
// emulator is tested on ESC/POS that our own encoder did not write.
//
//   cd printer/emulator/testdata/thirdparty && npm install && node generate.mjs
//
// The .bin files are committed; CI does not need node.
import EscPosEncoder from 'esc-pos-encoder';
import { writeFileSync } from 'node:fs';

// A 64x64 checkerboard with a black frame, as the 'object' image input the encoder takes.
function checker(size) {
  const data = new Uint8ClampedArray(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const frame = x < 4 || y < 4 || x >= size - 4 || y >= size - 4;
      const black = frame || ((x >> 3) + (y >> 3)) % 2 === 0;
      const i = (y * size + x) * 4;
      data[i] = data[i + 1] = data[i + 2] = black ? 0 : 255;
      data[i + 3] = 255;
    }
  }
  return { data, width: size, height: size };
}

for (const imageMode of ['column', 'raster']) {
  const encoder = new EscPosEncoder({ columns: 48, imageMode });
  const out = encoder
    .initialize()
    .codepage('cp858')
    .align('center')
    .size(2, 2).bold(true).line('THIRD PARTY').bold(false).size(1, 1)
    .line('esc-pos-encoder ' + imageMode)
    .align('left')
    .text('Plain ').bold(true).text('bold ').bold(false).underline(true).text('underlined').underline(false).newline()
    .invert(true).line(' inverted ').invert(false)
    .font('B').line('Font B line of small text').font('A')
    .line('Euro: \u20ac  Pound: \u00a3')
    .rule()
    .table(
      [{ width: 30, align: 'left' }, { width: 17, align: 'right' }],
      [['Coffee', '4.50'], ['Cake', '3.20'], [(e) => e.bold(true).text('Total').bold(false), '7.70']])
    .rule()
    .align('center')
    .qrcode('https://walletless.example/r/TP-0001', 2, 6, 'm')
    .newline()
    .barcode('TP0001', 'code128', 60)
    .newline()
    .image(checker(64), 64, 64, 'threshold')
    .newline()
    .pulse()
    .cut('partial')
    .encode();
  writeFileSync(`esc-pos-encoder-${imageMode}.bin`, out);
  console.log(`esc-pos-encoder-${imageMode}.bin: ${out.length} bytes`);
}
