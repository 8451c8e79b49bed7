# shellcheck shell=bash
# test/lab/gen-vm.sh: the vms: section of each node's bollard.yaml (agent/config/vm-schema.ts,
# docs/vm.md), appended by gen.sh when LAB_VMS=1. The guests are the lab's tiny guest
# (test/lab/guest: a Debian kernel and a busybox initramfs, built once and cached) under TCG,
# 128 MB and one vCPU each, their disks in $S/NODE/vms. Groups: cp, hard anti-affinity (cp1-cp3,
# and cp4, which three nodes cannot take); web, soft (web1-web4, started by an operator). db
# depends on MySQL and app on db; both write a counter to their disk (the others idle).
# LAB_VM_SET=console (test/lab/web.test.ts): one VM instead, con1, writing and printing its
# counter once a second (the web console's serial console reads it).
gen_vm_config() { # NODE: prints YAML to append to bollard.yaml
  local n=$1 d g m i idle writer
  d=$(node_dir "$n")
  loopback && return 0
  g=$("$LAB_DIR/guest/build.sh") || { echo "lab: the VM guest could not be built (test/lab/guest/build.sh)" >&2; return 1; }
  idle="console=ttyS0 quiet panic=-1 mitigations=off 8250.nr_uarts=1 tsc=reliable no_timer_check bollard.writes=0"
  writer="console=ttyS0 quiet panic=-1 mitigations=off 8250.nr_uarts=1 tsc=reliable no_timer_check bollard.gap_us=${LAB_VM_GAP_US:-50000}"
  echo "vms:"
  echo "  dir: $d/vms"
  echo "  accel: ${LAB_VM_ACCEL:-auto}"
  echo "  nbd_port: 10809"
  echo "  migration_port: 49152"
  echo "  stop_timeout_ms: 2000            # the busybox guests do not act on ACPI power-off: killed after 2 s"
  echo "  degraded_alarm_ms: 3000"
  echo "  anti_flap_ms: ${LAB_VM_ANTI_FLAP_MS:-600000}       # make bench-vm: 1000, one power-off after another"
  # VM backups go to the next node's directory (the lab's nodes share the host's filesystem; on the
  # appliance: a mount of that node's storage)
  local nx
  nx=${NODES[0]}; for i in "${!NODES[@]}"; do [ "${NODES[$i]}" = "$n" ] && nx=${NODES[$(( (i + 1) % ${#NODES[@]} ))]}; done
  # scheduled backups and verifications off (every_s/verify_every_s 0): the lab's VM tests take
  # theirs with `bollard vm backup` and time migrations; the schedule is tested in test/broker
  echo "  backup: { dir: $(node_dir "$nx")/backups, node: $nx, every_s: ${LAB_VM_BACKUP_EVERY_S:-0}, verify_every_s: ${LAB_VM_VERIFY_EVERY_S:-0} }"
  echo "  nodes:"
  for m in "${NODES[@]}"; do echo "    $m: { memory_mb: 1024 }        # address: ha.nodes.$m's"; done
  echo "  groups:"
  echo "    cp: { anti_affinity: hard }"
  echo "    web: { anti_affinity: soft }"
  if [ "${LAB_VM_SET:-}" = console ]; then
    echo "  disks:"
    echo "    con1-d: { size_mb: 16 }"
    echo "  machines:"
    echo "    con1: { memory_mb: 128, disks: [con1-d], priority: 50, kernel: { path: $g/vmlinux, initrd: $g/initrd.img, append: \"${writer/gap_us=${LAB_VM_GAP_US:-50000}/gap_us=1000000}\" } }"
    return 0
  fi
  echo "  disks:"
  for i in cp1 cp2 cp3 cp4 web1 web2 web3 web4; do echo "    $i-d: { size_mb: 16 }"; done
  echo "    db-d: { size_mb: 32 }"
  echo "    app-d: { size_mb: 32 }"
  echo "  machines:"
  for i in cp1 cp2 cp3 cp4; do
    echo "    $i: { memory_mb: 128, disks: [$i-d], group: cp, priority: 100, kernel: { path: $g/vmlinux, initrd: $g/initrd.img, append: \"$idle\" } }"
  done
  echo "    db: { memory_mb: 128, disks: [db-d], priority: 50, depends_on: [mysql], kernel: { path: $g/vmlinux, initrd: $g/initrd.img, append: \"$writer\" } }"
  echo "    app: { memory_mb: 128, disks: [app-d], priority: 10, depends_on: [db], kernel: { path: $g/vmlinux, initrd: $g/initrd.img, append: \"$writer\" } }"
  for i in web1 web2 web3 web4; do
    echo "    $i: { memory_mb: 128, disks: [$i-d], group: web, autostart: false, kernel: { path: $g/vmlinux, initrd: $g/initrd.img, append: \"$idle\" } }"
  done
}
