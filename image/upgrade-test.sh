#!/bin/bash
# `make image-upgrade-test`: one node under QEMU through two A/B image upgrades (to a good v2,
# then to a broken v3 that must roll back by itself): test/image/upgrade-ab.ts (through upgrade.test.ts with IMAGE_UPGRADE_TEST=1). Under KVM when
# it runs a standard guest here; otherwise under TCG (software emulation): slow (about 35 min
# here), and its timings are not KVM's. Not in make test.
#   IMAGE=...          another v1 image (default dist/bollard-node-<version>.img)
#   IMAGE_TEST_KEEP=1  keep the disks and serial log (the directory is printed)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "image/upgrade-test.sh"
need_host_packages qemu-system-x86 ovmf mtools e2fsprogs
cd "$REPO_DIR"
img=${IMAGE:-$REPO_DIR/dist/bollard-node-$(repo_version).img}
[ -s "$img" ] || die "$img does not exist: run 'make image' first"
IMAGE_UPGRADE_TEST=1 exec node --import tsx test/image/upgrade.test.ts
