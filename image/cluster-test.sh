#!/bin/bash
# `make image-cluster-test`: three copies of the built image, three seeds, three QEMUs on a
# multicast "network" inside a network namespace of their own (nothing leaves the machine);
# passes when the three nodes have formed a cluster by themselves (test/image/cluster.test.ts).
# Under KVM when it runs a standard guest here; otherwise under TCG (software emulation),
# which is slow and whose timings are not KVM's (the test says which it used).
#   IMAGE=...      another image (default dist/bollard-node-<version>.img)
#   IMAGE_TEST_KEEP=1  keep the disks and serial logs (printed at the start)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "image/cluster-test.sh"
need_host_packages qemu-system-x86 ovmf mtools
cd "$REPO_DIR"
img=${IMAGE:-$REPO_DIR/dist/bollard-node-$(repo_version).img}
[ -s "$img" ] || die "$img does not exist: run 'make image' first"
export IMAGE_CLUSTER_TEST=1 IMAGE_TEST_FALLBACK_TCG=${IMAGE_TEST_FALLBACK_TCG:-1}
exec node --import tsx test/image/cluster.test.ts
