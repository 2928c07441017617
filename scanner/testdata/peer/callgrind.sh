#!/usr/bin/env bash
# Instruction counts of decode only, ours beside zxing-cpp and zbar, under valgrind's
# callgrind: unlike times they do not move with the load of a shared machine.
#   scanner/testdata/peer/callgrind.sh [FRAME-NAME...]   (default: every frame)
# Needs valgrind, g++, pkg-config, libzxing-dev, libzbar-dev. Prints one line per
# frame: instructions of ours, zxing-cpp, zbar and the ratios. Ours is a warm Decode
# (a camera's steady state): the frame decoded twice by a fresh decoder, less the
# frame decoded once. (A first, cold, call alone under-counts: its count held none of
# the region decode that read the code; that call grows the goroutine's stack, which
# seems to be where callgrind loses track of it.)
set -euo pipefail
cd "$(dirname "$0")/../../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/scanner.test" ./scanner
"$tmp/scanner.test" -test.run '^TestWriteRawFrames$' -frames-out "$tmp/frames" -frames-raw >/dev/null
g++ -O2 -std=c++17 -o "$tmp/peer" scanner/testdata/peer/peer.cc $(pkg-config --cflags --libs zxing zbar)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then mapfile -t names < <(cut -d' ' -f1 "$tmp/frames/frames.txt"); fi
count() { grep -h '^summary:' "$1" | awk '{print $2}'; }
printf '%-30s %14s %14s %14s %8s %8s\n' frame ours zxing-cpp zbar /zxing /zbar
for n in "${names[@]}"; do
	grep "^$n " "$tmp/frames/frames.txt" >"$tmp/one.txt"
	valgrind -q --tool=callgrind --callgrind-out-file="$tmp/zx.out" --toggle-collect='ZXing::ReadBarcodes*' "$tmp/peer" "$tmp/one.txt" 1 >/dev/null
	valgrind -q --tool=callgrind --callgrind-out-file="$tmp/zb.out" --toggle-collect='zbar_scan_image' "$tmp/peer" "$tmp/one.txt" 1 >/dev/null
	cat "$tmp/one.txt" "$tmp/one.txt" >"$tmp/two.txt"
	# Go's asynchronous preemption signals trip callgrind: off, one P; and valgrind
	# 3.19 stops (SIGILL) on instructions the runtime picks by CPU feature: none.
	ours() {
		rm -f "$tmp/go.out"
		SCANNER_RAW_MANIFEST="$1" GODEBUG=asyncpreemptoff=1,cpu.all=off GOMAXPROCS=1 valgrind -q --tool=callgrind \
			--callgrind-out-file="$tmp/go.out" --toggle-collect='*scanner.(*Decoder).decode' \
			"$tmp/scanner.test" -test.run '^TestDecodeRawFrames$' >/dev/null 2>&1 && count "$tmp/go.out"
	}
	o1=$(ours "$tmp/one.txt" || true) o2=$(ours "$tmp/two.txt" || true)
	z=$(count "$tmp/zx.out") b=$(count "$tmp/zb.out")
	if [ -z "$o1" ] || [ -z "$o2" ] || [ "$o2" -le "$o1" ]; then
		printf '%-30s %14s %14d %14d  (ours not counted: valgrind stopped)\n' "$n" - "$z" "$b"
		continue
	fi
	o=$((o2 - o1))
	printf '%-30s %14d %14d %14d %8.2f %8.2f\n' "$n" "$o" "$z" "$b" "$(echo "$o/$z" | bc -l)" "$(echo "$o/$b" | bc -l)"
done
