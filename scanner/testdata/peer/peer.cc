// peer.cc: the C++ peers of the scanner benchmark. It decodes the same in-memory
// gray frames as the Go decoder with zxing-cpp (ZXing::ReadBarcodes on an ImageView,
// default hints, QR Code and Code 128 only, one symbol) and with zbar (zbar_scan_image on a Y800
// image, QR Code and Code 128 only), and prints the decode time per frame.
//
// Built by the Go benchmark (scanner/peer_test.go) in a temporary directory:
//   g++ -O2 -std=c++17 -DZX_USE_UTF8 peer.cc $(pkg-config --cflags --libs zxing zbar)
// Debian: apt-get install libzxing-dev libzbar-dev g++ pkg-config
//
// Usage: peer MANIFEST REPS
// MANIFEST has one frame a line: "NAME WIDTH HEIGHT PATH", PATH holding WIDTH*HEIGHT
// gray bytes. Each frame is read into memory once, then decoded REPS times by each
// library (file reading is not timed). Output, one line per frame and library:
//   NAME<TAB>LIB<TAB>MEDIAN_NS<TAB>MIN_NS<TAB>HEX_OF_TEXT (empty when nothing was read)
#define ZX_USE_UTF8 1
// zbar.h first: its C++ wrappers clash with ZXing's error macros otherwise.
#include <zbar.h>
#include <ReadBarcode.h>
using namespace zbar;

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string hex(const std::string& s) {
	static const char* d = "0123456789abcdef";
	std::string out;
	for (unsigned char c : s) {
		out += d[c >> 4];
		out += d[c & 15];
	}
	return out;
}

struct Timing {
	long long median, min;
};

template <typename F> Timing timeIt(int reps, F f) {
	std::vector<long long> ns;
	for (int i = 0; i < reps; i++) {
		auto t0 = std::chrono::steady_clock::now();
		f();
		auto t1 = std::chrono::steady_clock::now();
		ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
	}
	std::sort(ns.begin(), ns.end());
	return {ns[ns.size() / 2], ns[0]};
}

} // namespace

int main(int argc, char** argv) {
	if (argc != 3) {
		std::fprintf(stderr, "usage: peer MANIFEST REPS\n");
		return 2;
	}
	int reps = std::atoi(argv[2]);
	if (reps < 1) reps = 1;
	std::ifstream manifest(argv[1]);
	if (!manifest) {
		std::fprintf(stderr, "peer: cannot open %s\n", argv[1]);
		return 1;
	}

	ZXing::DecodeHints hints;
	hints.setFormats(ZXing::BarcodeFormat::QRCode | ZXing::BarcodeFormat::Code128);
	// One code is all a scanner wants (and zxing-cpp 1.4 aborts comparing two 1D
	// results of different line counts when asked for several).
	hints.setMaxNumberOfSymbols(1);

	zbar_image_scanner_t* scanner = zbar_image_scanner_create();
	zbar_image_scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
	zbar_image_scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
	zbar_image_scanner_set_config(scanner, ZBAR_CODE128, ZBAR_CFG_ENABLE, 1);

	std::string line;
	while (std::getline(manifest, line)) {
		std::istringstream in(line);
		std::string name, path;
		int w = 0, h = 0;
		if (!(in >> name >> w >> h >> path) || w <= 0 || h <= 0) continue;
		std::vector<unsigned char> pix(size_t(w) * h);
		std::ifstream f(path, std::ios::binary);
		if (!f.read(reinterpret_cast<char*>(pix.data()), pix.size())) {
			std::fprintf(stderr, "peer: %s: short file\n", path.c_str());
			return 1;
		}

		// zxing-cpp
		std::string zx;
		ZXing::ImageView view(pix.data(), w, h, ZXing::ImageFormat::Lum);
		Timing tz = timeIt(reps, [&] {
			auto rs = ZXing::ReadBarcodes(view, hints);
			zx.clear();
			for (auto& r : rs)
				if (r.isValid()) {
					zx = r.text();
					break;
				}
		});
		std::printf("%s\tzxing-cpp\t%lld\t%lld\t%s\n", name.c_str(), tz.median, tz.min, hex(zx).c_str());

		// zbar
		std::string zb;
		zbar_image_t* img = zbar_image_create();
		zbar_image_set_format(img, zbar_fourcc('Y', '8', '0', '0'));
		zbar_image_set_size(img, w, h);
		zbar_image_set_data(img, pix.data(), pix.size(), nullptr);
		Timing tb = timeIt(reps, [&] {
			int n = zbar_scan_image(scanner, img);
			zb.clear();
			if (n > 0) {
				const zbar_symbol_t* s = zbar_image_first_symbol(img);
				if (s) zb.assign(zbar_symbol_get_data(s), zbar_symbol_get_data_length(s));
			}
		});
		zbar_image_destroy(img);
		std::printf("%s\tzbar\t%lld\t%lld\t%s\n", name.c_str(), tb.median, tb.min, hex(zb).c_str());
		std::fflush(stdout);
	}
	zbar_image_scanner_destroy(scanner);
	return 0;
}
