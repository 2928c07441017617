#!/usr/bin/env bash
# deb-chroot.sh: install a walletless .deb with apt into a fresh Debian bookworm
# chroot made by debootstrap, then check the files, the user, the permissions, that
# the unit is enabled and that posd starts with the packaged config.
#
# --arch amd64 (the default) bootstraps natively. --arch arm64 or armhf makes a
# foreign root: debootstrap --foreign on this machine, then its second stage runs
# inside the root under qemu-user-static, through a binfmt_misc handler with the F
# flag (registered here from /usr/lib/binfmt.d when missing, so it works without
# systemd-binfmt or binfmt-support running; the F flag lets the kernel use the
# interpreter inside the chroot). Every binary in the root, posd included, then runs
# under qemu.
#
# Needs root and debootstrap (apt-get install debootstrap; foreign arches also
# qemu-user-static). Prints how long each step took ("time: STEP N s").
#
# Usage: scripts/deb-chroot.sh [--arch amd64|arm64|armhf] [--keep] [DEB] [CHROOT_DIR]
#   DEB         default: the newest dist/walletless_*_ARCH.deb
#   CHROOT_DIR  default: a new /tmp/walletless-chroot.XXXXXX, removed at the end
#               unless --keep; a given directory is kept and reused if it already
#               holds a bootstrapped root
set -euo pipefail
cd "$(dirname "$0")/.."
arch=amd64
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--arch) arch=${2:?--arch needs amd64, arm64 or armhf}; shift 2 ;;
	--arch=*) arch=${1#--arch=}; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	--*) echo "deb-chroot.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
case $arch in
amd64) qarch=x86_64 ;;
arm64) qarch=aarch64 ;;
armhf) qarch=arm ;;
*) echo "deb-chroot.sh: --arch $arch: want amd64, arm64 or armhf" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "deb-chroot.sh: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "deb-chroot.sh: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
deb=${1:-$(ls -t dist/walletless_*_"$arch".deb 2>/dev/null | head -1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "deb-chroot.sh: no .deb: run make deb DEB_ARCHES=$arch first" >&2; exit 1; }
case $(basename "$deb") in *_"$arch".deb) ;; *) echo "deb-chroot.sh: $deb is not an $arch package" >&2; exit 1 ;; esac
made=0
if [ -n "${2:-}" ]; then
	root=$2
	mkdir -p "$root"
else
	root=$(mktemp -d /tmp/walletless-chroot.XXXXXX)
	chmod 0755 "$root" # the chroot's /: mktemp makes it 0700, which locks out every user but root
	made=1
fi
root=$(cd "$root" && pwd)
host=$(dpkg --print-architecture)

# cleanup unmounts what this script mounted and removes a root it made (never one
# with anything still mounted below it).
cleanup() {
	umount "$root/proc" 2>/dev/null || umount -l "$root/proc" 2>/dev/null || true
	if [ "$made" = 1 ] && [ "$keep" = 0 ]; then
		if grep -q " $root/" /proc/self/mountinfo; then
			echo "deb-chroot.sh: something is still mounted under $root; not removing it" >&2
		else
			rm -rf "$root" "$root.debootstrap.log"
		fi
	fi
}
trap cleanup EXIT

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" -v s="$2" 'BEGIN { printf "time: %s %.1f s\n", s, b - a }'; }

# binfmt makes sure the kernel runs $arch binaries through qemu-$qarch-static.
binfmt() {
	local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-$qarch.conf
	command -v "qemu-$qarch-static" >/dev/null ||
		{ echo "deb-chroot.sh: qemu-$qarch-static is missing: apt-get install qemu-user-static" >&2; exit 1; }
	[ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir" ||
		{ echo "deb-chroot.sh: cannot mount binfmt_misc on $dir" >&2; exit 1; }
	if [ ! -e "$dir/qemu-$qarch" ]; then
		[ -f "$conf" ] || { echo "deb-chroot.sh: $conf is missing (qemu-user-static too old?)" >&2; exit 1; }
		grep -q ':[A-Z]*F[A-Z]*$' "$conf" || { echo "deb-chroot.sh: $conf lacks the F flag" >&2; exit 1; }
		echo "registering the qemu-$qarch binfmt_misc handler from $conf"
		cat "$conf" >"$dir/register"
	fi
	grep -qx enabled "$dir/status" && grep -qx enabled "$dir/qemu-$qarch" ||
		{ echo "deb-chroot.sh: binfmt_misc or its qemu-$qarch handler is disabled" >&2; exit 1; }
	grep -q '^flags: .*F' "$dir/qemu-$qarch" ||
		{ echo "deb-chroot.sh: the qemu-$qarch handler lacks the F flag: it cannot run inside a chroot" >&2; exit 1; }
}

if [ ! -x "$root/usr/bin/apt-get" ]; then
	if [ "$arch" = "$host" ]; then
		echo "debootstrap bookworm ($arch) into $root (a few minutes)"
		t=$(now)
		debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
			{ tail -20 "$root.debootstrap.log"; exit 1; }
		took "$t" "debootstrap"
	else
		binfmt
		echo "debootstrap --foreign bookworm ($arch) into $root, first stage (about a minute)"
		t=$(now)
		debootstrap --arch="$arch" --foreign --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
			{ tail -20 "$root.debootstrap.log"; exit 1; }
		took "$t" "debootstrap first stage"
		echo "debootstrap second stage under qemu-$qarch-static (several minutes)"
		t=$(now)
		chroot "$root" /debootstrap/debootstrap --second-stage >>"$root.debootstrap.log" 2>&1 ||
			{ tail -20 "$root.debootstrap.log"; tail -20 "$root/debootstrap/debootstrap.log" 2>/dev/null; exit 1; }
		took "$t" "debootstrap second stage"
	fi
elif [ "$arch" != "$host" ]; then
	binfmt
fi
[ "$(chroot "$root" dpkg --print-architecture)" = "$arch" ] ||
	{ echo "deb-chroot.sh: $root is not an $arch root" >&2; exit 1; }

cp "$deb" "$root/tmp/"
name=$(basename "$deb")
mount -t proc proc "$root/proc"
echo "apt-get install ./$name in the chroot"
t=$(now)
chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./tmp/$name >/dev/null"
took "$t" "apt-get update and install"

fail=0
check() { if ! chroot "$root" sh -c "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
# elf_machine prints the ELF e_machine of a file in the root (read on the host).
elf_machine() { od -An -tx1 -j18 -N2 "$root$1" | tr -d ' \n'; }
want_machine=$(case $arch in amd64) echo 3e00 ;; arm64) echo b700 ;; armhf) echo 2800 ;; esac)
for b in posd posctl posfleet; do
	if [ "$(elf_machine /usr/bin/$b)" = "$want_machine" ]; then echo "ok: $b is an $arch binary"; else echo "FAIL: $b is not an $arch binary"; fail=1; fi
done
check "posd runs" "posd -version"
check "posctl runs" "posctl version"
check "system user walletless" "getent passwd walletless | grep -q ':/var/lib/walletless:/usr/sbin/nologin'"
check "every group the unit names exists" "for g in \$(sed -n 's/^SupplementaryGroups=//p' /usr/lib/systemd/system/posd.service); do getent group \$g >/dev/null || exit 1; done"
check "/var/lib/walletless 0700 walletless" "[ \"\$(stat -c '%a %U %G' /var/lib/walletless)\" = '700 walletless walletless' ]"
check "posd.json 0640 root:walletless" "[ \"\$(stat -c '%a %U %G' /etc/walletless/posd.json)\" = '640 root walletless' ]"
check "posd.json is a conffile" "grep -q /etc/walletless/posd.json /var/lib/dpkg/info/walletless.conffiles"
check "unit installed" "[ -f /usr/lib/systemd/system/posd.service ]"
check "unit enabled" "[ -L /etc/systemd/system/multi-user.target.wants/posd.service ]"
check "udev rules installed" "[ -f /usr/lib/udev/rules.d/60-walletless.rules ]"
# posd is stopped as soon as it logs that it runs: it has 60 s under qemu, 5 s
# natively (as before).
wait=10
[ "$arch" = "$host" ] || wait=120
check "posd starts as walletless with the packaged config (no scanner or printer plugged in)" \
	"runuser -u walletless -- posd -config /etc/walletless/posd.json -data /var/lib/walletless </dev/null >/tmp/posd.out 2>&1 & p=\$!
	 i=0; while [ \$i -lt $wait ] && ! grep -q 'posd running' /tmp/posd.out; do sleep 0.5; i=\$((i+1)); done
	 kill \$p 2>/dev/null; wait \$p 2>/dev/null; grep -q 'posd running' /tmp/posd.out || { cat /tmp/posd.out; false; }"
exit $fail
