// The `vms:` section of bollard.yaml (issue 14, docs/vm.md): where QEMU keeps each VM's disks
// and sockets, what each node gives to VMs, the anti-affinity groups, the disks, and one
// definition per VM. The same section on every node (provisioning writes it, as it writes ha:);
// every node reports the digest of what it holds and the leader gives VMs only to nodes that
// hold the same (ha/vm-manager.ts). The relations between keys (an unknown disk, more memory than
// any node has, a cycle in depends_on) are errors that name the key.
import { createHash } from "node:crypto";
import { z } from "zod";
import { VM_SERVICE_DEPS, type VmCatalog, type VmDef } from "../ha/vm-types.ts";

const expect = (what: string) => ({ error: what });
const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) => z.object(shape, expect(`a mapping (${what})`)).strict();
const absPath = (what: string) => z.string(expect(`an absolute path (${what})`)).refine((v) => v.startsWith("/") && !v.includes("\0"));
const ms = (d: number) => z.number(expect("a whole number of milliseconds > 0")).int().positive().max(3_600_000).default(d);
const secs = (d: number) => z.number(expect("a whole number of seconds >= 0 (0: off)")).int().min(0).max(31_536_000).default(d);
const port = (d: number) => z.number(expect("a port, 1-65535")).int().min(1).max(65535).default(d);
/** VM, disk and group names: a QEMU id, a file name and part of an alarm id */
export const VM_NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;
const vmName = () => z.string(expect("a name of a-z, 0-9 and -, starting with a letter, at most 31 characters")).regex(VM_NAME_RE);

const Machine = section(
  {
    vcpus: z.number(expect("a whole number of vCPUs, 1-64")).int().min(1).max(64).default(1),
    memory_mb: z.number(expect("a whole number of MB, 16-1048576")).int().min(16).max(1_048_576),
    disks: z.array(vmName(), expect("a list of disk names from vms.disks")).max(16).default([]),
    nics: z.array(section({ bridge: z.string(expect("a bridge name")).regex(/^[A-Za-z0-9_.-]{1,15}$/), mac: z.string(expect("a MAC address")).regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) }, "bridge, mac"), expect("a list of NICs")).max(8).default([]),
    group: vmName().optional(),
    priority: z.number(expect("a whole number, -1000 to 1000 (higher first)")).int().min(-1000).max(1000).default(0),
    depends_on: z.array(vmName(), expect(`a list of VM names, or ${VM_SERVICE_DEPS.join(" / ")}`)).max(16).default([]),
    autostart: z.boolean(expect("true or false")).default(true),
    kernel: section(
      { path: absPath("the guest kernel"), initrd: absPath("the guest initramfs").optional(), append: z.string().max(1024).default("console=ttyS0") },
      "path, initrd, append",
    ).optional(),
  },
  "vcpus, memory_mb, disks, nics, group, priority, depends_on, autostart, kernel",
);

export const VmsSection = section(
  {
    /** on every node: <dir>/<vm>/ holds its disks, QMP and serial sockets, pid file and serial log */
    dir: absPath("where VM disks and sockets live").default("/var/lib/bollard/vms"),
    qemu: z.string().min(1).max(4096).default("qemu-system-x86_64"),
    storage_daemon: z.string().min(1).max(4096).default("qemu-storage-daemon"),
    /** auto: KVM only where a probe guest boots under it (resources/kvm-probe.ts), else TCG */
    accel: z.enum(["auto", "kvm", "tcg"], expect('"auto", "kvm" or "tcg"')).default("auto"),
    /** a kernel the KVM probe boots (and waits for `expect` on its serial port); absent: a boot sector */
    probe: section({ kernel: absPath("the probe kernel"), initrd: absPath("its initramfs").optional(), append: z.string().max(1024).default("console=ttyS0 panic=-1"), expect: z.string().min(1).max(200).default("Linux version") }, "kernel, initrd, append, expect").optional(),
    machine: z.string().regex(/^[a-z0-9.-]{1,40}$/).default("q35"),
    /** each node's qemu-storage-daemon serves replica disks over NBD here, on its address */
    nbd_port: port(10809),
    /** live migrations arrive on migration_port + the VM's index in vms.machines */
    migration_port: port(49152),
    stop_timeout_ms: ms(30_000),
    anti_flap_ms: ms(600_000),
    migrate_timeout_ms: ms(180_000),
    degraded_alarm_ms: ms(10_000),
    nodes: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,30}$/), section({ address: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, "an IPv4 address").optional(), memory_mb: z.number(expect("a whole number of MB")).int().min(0).max(16_777_216) }, "address, memory_mb"), expect("a mapping of node name to its address and the memory it gives to VMs")),
    groups: z.record(vmName(), section({ anti_affinity: z.enum(["hard", "soft"], expect('"hard" or "soft"')).default("soft") }, "anti_affinity"), expect("a mapping of group name to its anti-affinity")).default({}),
    disks: z.record(vmName(), section({ size_mb: z.number(expect("a whole number of MB, 1-16777216")).int().min(1).max(16_777_216), image: absPath("a raw image to start from").optional() }, "size_mb, image"), expect("a mapping of disk name to its size")).default({}),
    machines: z.record(vmName(), Machine, expect("a mapping of VM name to its definition")).default({}),
    /** `bollard vm backup`: the chain's directory (another node's storage: an NFS mount of it) and that node */
    backup: section(
      {
        dir: absPath("where VM backups are kept"),
        node: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/).optional(),
        /** scheduled backups of each VM, by the agent of the node that runs it; 0: only `bollard vm backup` */
        every_s: secs(86_400),
        /** incremental backups between two full ones (0: every one full) */
        full_every: z.number(expect("a whole number 0-100")).int().min(0).max(100).default(6),
        retention: section({ daily: z.number(expect("a whole number 0-366")).int().min(0).max(366).default(7), weekly: z.number(expect("a whole number 0-520")).int().min(0).max(520).default(4) }, "daily, weekly").prefault({}),
        /** verify each VM's newest backup this often (a new one at once); 0: never */
        verify_every_s: secs(86_400),
      },
      "dir, node, every_s, full_every, retention, verify_every_s",
    ).optional(),
  },
  "dir, qemu, storage_daemon, accel, probe, machine, nbd_port, migration_port, stop_timeout_ms, anti_flap_ms, migrate_timeout_ms, degraded_alarm_ms, nodes, groups, disks, machines, backup",
);
export type VmsFile = z.infer<typeof VmsSection>;

export interface VmsConfig {
  dir: string;
  qemu: string;
  storageDaemon: string;
  accel: "auto" | "kvm" | "tcg";
  probe: { kernel: string; initrd: string | null; append: string; expect: string } | null;
  machine: string;
  nbdPort: number;
  migrationPort: number;
  stopTimeoutMs: number;
  antiFlapMs: number;
  migrateTimeoutMs: number;
  degradedAlarmMs: number;
  /** each node's data address (ha.nodes' when absent here) */
  addresses: Record<string, string>;
  catalog: VmCatalog;
  /** vms.machines' digest: every node reports it, the leader compares */
  digest: string;
  /** vms.backup: where VM backups are kept (the chain), the node whose storage that is, the
   *  schedule, retention and verification (agent/runtime/vm-backup-jobs.ts) */
  backup: VmBackupConfig | null;
}

export interface VmBackupConfig {
  dir: string;
  node: string | null;
  everyS: number;
  fullEvery: number;
  retention: { daily: number; weekly: number };
  verifyEveryS: number;
}

/** The typed section; `haAddress` gives a node's address from ha.nodes when vms.nodes has none. */
export function toVmsConfig(f: VmsFile, haAddress: (node: string) => string | undefined): VmsConfig {
  const defs: VmDef[] = Object.entries(f.machines).map(([name, m]) => ({
    name, vcpus: m.vcpus, memoryMb: m.memory_mb,
    disks: m.disks.map((d) => ({ name: d, sizeMb: f.disks[d]?.size_mb ?? 0, image: f.disks[d]?.image ?? null })),
    nics: m.nics.map((n) => ({ bridge: n.bridge, mac: n.mac })), group: m.group ?? null, priority: m.priority, dependsOn: [...m.depends_on], autostart: m.autostart,
    kernel: m.kernel ? { path: m.kernel.path, initrd: m.kernel.initrd ?? null, append: m.kernel.append } : null,
  }));
  const catalog: VmCatalog = {
    defs,
    groups: Object.fromEntries(Object.entries(f.groups).map(([g, v]) => [g, { antiAffinity: v.anti_affinity }])),
    capacity: Object.fromEntries(Object.entries(f.nodes).map(([n, v]) => [n, v.memory_mb])),
  };
  const addresses: Record<string, string> = {};
  for (const [n, v] of Object.entries(f.nodes)) { const a = v.address ?? haAddress(n); if (a) addresses[n] = a; }
  return {
    dir: f.dir, qemu: f.qemu, storageDaemon: f.storage_daemon, accel: f.accel,
    probe: f.probe ? { kernel: f.probe.kernel, initrd: f.probe.initrd ?? null, append: f.probe.append, expect: f.probe.expect } : null,
    machine: f.machine, nbdPort: f.nbd_port, migrationPort: f.migration_port, stopTimeoutMs: f.stop_timeout_ms, antiFlapMs: f.anti_flap_ms,
    migrateTimeoutMs: f.migrate_timeout_ms, degradedAlarmMs: f.degraded_alarm_ms, addresses, catalog, digest: defsDigest(catalog),
    backup: f.backup ? { dir: f.backup.dir, node: f.backup.node ?? null, everyS: f.backup.every_s, fullEvery: f.backup.full_every, retention: f.backup.retention, verifyEveryS: f.backup.verify_every_s } : null,
  };
}

/** 16 hex digits over the definitions, groups and capacities, in a canonical order. */
export function defsDigest(c: VmCatalog): string {
  const sorted = (o: Record<string, unknown>) => Object.keys(o).sort().map((k) => [k, o[k]]);
  const text = JSON.stringify([[...c.defs].sort((a, b) => (a.name < b.name ? -1 : 1)), sorted(c.groups), sorted(c.capacity)]);
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/**
 * Relations, each a finished `path: ...` line: every member has vms.nodes (and an address);
 * every disk a VM names is in vms.disks and attached once; its memory fits on some node; its
 * group is defined; what it depends on is a VM or a service, and never leads back to itself.
 */
export function checkVms(f: VmsFile, members: string[], haAddress: (node: string) => string | undefined): string[] {
  const errs: string[] = [];
  for (const m of members) {
    const n = f.nodes[m];
    if (!n) errs.push(`vms.nodes: expected an entry for member ${m} (address, memory_mb), got none`);
    else if (!n.address && !haAddress(m)) errs.push(`vms.nodes.${m}.address: expected the node's data address (ha.nodes.${m} has none either), got nothing`);
  }
  if (f.backup?.node && !members.includes(f.backup.node)) errs.push(`vms.backup.node: ${JSON.stringify(f.backup.node)} is not a member (${members.join(", ")})`);
  const largest = Math.max(0, ...Object.values(f.nodes).map((n) => n.memory_mb));
  const owner = new Map<string, string>();
  const names = Object.keys(f.machines);
  for (const [vm, m] of Object.entries(f.machines)) {
    const at = `vms.machines.${vm}`;
    m.disks.forEach((d, i) => {
      if (!(d in f.disks)) errs.push(`${at}.disks[${i}]: unknown disk ${JSON.stringify(d)}; expected one of vms.disks (${Object.keys(f.disks).join(", ") || "none defined"})`);
      else if (owner.has(d)) errs.push(`${at}.disks[${i}]: disk ${JSON.stringify(d)} is already attached to ${owner.get(d)}; a disk belongs to one VM`);
      else owner.set(d, vm);
    });
    if (m.disks.length !== new Set(m.disks).size) errs.push(`${at}.disks: a disk is listed twice`);
    if (m.memory_mb > largest) errs.push(`${at}.memory_mb: ${m.memory_mb} MB is more than any node gives to VMs (the largest, vms.nodes.*.memory_mb, is ${largest} MB)`);
    if (m.group !== undefined && !(m.group in f.groups)) errs.push(`${at}.group: unknown group ${JSON.stringify(m.group)}; expected one of vms.groups (${Object.keys(f.groups).join(", ") || "none defined"})`);
    m.depends_on.forEach((d, i) => {
      if (d === vm) errs.push(`${at}.depends_on[${i}]: ${vm} cannot depend on itself`);
      else if (!names.includes(d) && !(VM_SERVICE_DEPS as readonly string[]).includes(d)) errs.push(`${at}.depends_on[${i}]: unknown ${JSON.stringify(d)}; expected a VM of vms.machines or ${VM_SERVICE_DEPS.join(" / ")}`);
    });
    if (!m.kernel && m.disks.length === 0) errs.push(`${at}: expected disks (it boots from the first) or kernel, got neither`);
  }
  for (const cycle of cycles(f)) errs.push(`vms.machines.${cycle[0]}.depends_on: a cycle: ${cycle.join(" -> ")}; no VM of it could ever start`);
  if (f.migration_port + names.length - 1 > 65535) errs.push(`vms.migration_port: ${f.migration_port} + ${names.length - 1} (one port per VM) is above 65535`);
  return errs;
}

/** Each cycle of depends_on once, as the path that closes it (a -> b -> a), from its smallest name. */
function cycles(f: VmsFile): string[][] {
  const out: string[][] = [];
  const seen = new Set<string>();
  const deps = (vm: string) => (f.machines[vm]?.depends_on ?? []).filter((d) => d in f.machines && d !== vm);
  const walk = (vm: string, path: string[]) => {
    const i = path.indexOf(vm);
    if (i >= 0) {
      const c = path.slice(i);
      const start = c.indexOf([...c].sort()[0]!);
      const norm = [...c.slice(start), ...c.slice(0, start)];
      const key = norm.join(">");
      if (!seen.has(key)) { seen.add(key); out.push([...norm, norm[0]!]); }
      return;
    }
    if (path.length > 64) return;
    for (const d of deps(vm)) walk(d, [...path, vm]);
  };
  for (const vm of Object.keys(f.machines).sort()) walk(vm, []);
  return out;
}
