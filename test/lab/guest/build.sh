#!/bin/bash
# test/lab/guest/build.sh: the lab's tiny guest, built from Debian packages (docs/vm.md "The lab
# guest"): the kernel of linux-image-<abi>-amd64 (apt-get download, dpkg-deb -x; no install),
# its uncompressed vmlinux (the bzImage's XZ payload: QEMU boots it through its PVH entry and
# skips the decompression that takes ~6 s under TCG), and an initramfs of busybox-static, the
# virtio modules and test/lab/guest/init (the counter writer). The result is cached in
# $LAB_GUEST_CACHE (default /var/cache/bollard/lab-guest as root, else ~/.cache/bollard/lab-guest)
# and rebuilt only when init or this script change. Prints the cache directory, which holds
# vmlinux, initrd.img and manifest. Exit 1 (with why) when it cannot build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" = 0 ]; then CACHE=${LAB_GUEST_CACHE:-/var/cache/bollard/lab-guest}
else CACHE=${LAB_GUEST_CACHE:-${HOME:-/tmp}/.cache/bollard/lab-guest}; fi
# the virtio stack in dependency order (LAB-NOTES: virtio first fails silently otherwise)
MODULES="virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk"

stamp=$(cat "$HERE/init" "$HERE/build.sh" | sha256sum | cut -c1-16)
if [ -f "$CACHE/manifest" ] && grep -qx "stamp=$stamp" "$CACHE/manifest" && [ -s "$CACHE/vmlinux" ] && [ -s "$CACHE/initrd.img" ]; then
  echo "$CACHE"
  exit 0
fi
for t in apt-get apt-cache dpkg-deb xz python3; do
  command -v "$t" >/dev/null || { echo "guest: $t is missing (Debian's apt, dpkg, xz-utils, python3)" >&2; exit 1; }
done
mkdir -p "$CACHE"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bollard-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# the kernel package linux-image-amd64 points to (e.g. linux-image-6.1.0-57-amd64)
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1; }
pkg=$(kpkg)
if [ -z "$pkg" ] || ! apt-cache show busybox-static >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(kpkg)
fi
[ -n "$pkg" ] || { echo "guest: no linux-image-*-amd64 package known to apt (apt-get update?)" >&2; exit 1; }
cd "$tmp"
# apt-get download writes to the current directory; as root it warns that _apt cannot write here
chmod 755 "$tmp"
apt-get download -qq "$pkg" busybox-static >/dev/null 2>"$tmp/apt.err" || { cat "$tmp/apt.err" >&2; echo "guest: apt-get download $pkg busybox-static failed" >&2; exit 1; }
dpkg-deb -x "$(ls "$tmp"/linux-image-*.deb)" k
dpkg-deb -x "$(ls "$tmp"/busybox-static_*.deb)" b
vmlinuz=$(ls k/boot/vmlinuz-*)
kver=${vmlinuz##*/vmlinuz-}
# the bzImage's payload: XZ on Debian 12 (CONFIG_KERNEL_XZ); its ELF vmlinux carries the PVH note (CONFIG_PVH)
python3 - "$vmlinuz" payload.xz <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\xfd7zXZ\x00")
if i < 0:
    sys.exit("guest: no XZ payload in " + sys.argv[1])
open(sys.argv[2], "wb").write(d[i:])
EOF
xz -dc payload.xz >vmlinux 2>/dev/null || [ -s vmlinux ]   # trailing bytes after the stream are expected
head -c 4 vmlinux | grep -q ELF || { echo "guest: the payload of $vmlinuz is not an ELF vmlinux" >&2; exit 1; }

mkdir -p ir/bin ir/dev ir/proc ir/sys ir/lib/modules
cp b/bin/busybox ir/bin/busybox
install -m 0755 "$HERE/init" ir/init
for m in $MODULES; do cp "k/lib/modules/$kver/kernel/drivers/$m.ko" ir/lib/modules/; done
[ "$(id -u)" = 0 ] && mknod ir/dev/console c 5 1
# busybox's own cpio (the cpio package is not installed everywhere); uncompressed: nothing to
# decompress under TCG
(cd ir && find . | ../b/bin/busybox cpio -o -H newc >../initrd.img 2>/dev/null)

cp vmlinux "$CACHE/vmlinux.new" && mv "$CACHE/vmlinux.new" "$CACHE/vmlinux"
cp initrd.img "$CACHE/initrd.img.new" && mv "$CACHE/initrd.img.new" "$CACHE/initrd.img"
printf 'stamp=%s\nkernel=%s\npackage=%s\nbusybox=%s\n' "$stamp" "$kver" "$pkg" "$(ls "$tmp"/busybox-static_*.deb | sed 's,.*/,,')" >"$CACHE/manifest"
echo "$CACHE"
