#!/usr/bin/env bash
# deb-chroot.sh: install the amd64 walletless .deb with apt into a fresh Debian
# (bookworm) chroot made by debootstrap, then check the files, the user, the
# permissions and that the unit is enabled. Needs root and debootstrap
# (apt-get install debootstrap). Usage: scripts/deb-chroot.sh [DEB] [CHROOT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t dist/walletless_*_amd64.deb 2>/dev/null | head -1)}
root=${2:-$(mktemp -d /tmp/walletless-chroot.XXXXXX)}
[ -n "$deb" ] || { echo "no .deb: run make deb DEB_ARCHES=amd64 first"; exit 1; }
if [ ! -x "$root/usr/bin/apt-get" ]; then
	echo "debootstrap bookworm into $root (a few minutes)"
	debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
		{ tail -20 "$root.debootstrap.log"; exit 1; }
fi
cp "$deb" "$root/tmp/"
name=$(basename "$deb")
mount -t proc proc "$root/proc" 2>/dev/null || true
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./tmp/$name >/dev/null"
fail=0
check() { if ! chroot "$root" sh -c "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
check "posd runs" "posd -version"
check "posctl runs" "posctl version"
check "system user walletless" "getent passwd walletless | grep -q ':/var/lib/walletless:/usr/sbin/nologin'"
check "gpio group" "getent group gpio >/dev/null"
check "/var/lib/walletless 0700 walletless" "[ \"\$(stat -c '%a %U %G' /var/lib/walletless)\" = '700 walletless walletless' ]"
check "posd.json 0640 root:walletless" "[ \"\$(stat -c '%a %U %G' /etc/walletless/posd.json)\" = '640 root walletless' ]"
check "posd.json is a conffile" "grep -q /etc/walletless/posd.json /var/lib/dpkg/info/walletless.conffiles"
check "unit installed" "[ -f /usr/lib/systemd/system/posd.service ]"
check "unit enabled" "[ -L /etc/systemd/system/multi-user.target.wants/posd.service ]"
check "udev rules installed" "[ -f /usr/lib/udev/rules.d/60-walletless.rules ]"
check "posd starts as walletless with the packaged config (no scanner or printer plugged in)" "timeout 5 runuser -u walletless -- posd -config /etc/walletless/posd.json -data /var/lib/walletless </dev/null >/tmp/posd.out 2>&1; grep -q 'posd running' /tmp/posd.out"
exit $fail
