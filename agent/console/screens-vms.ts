// Screen 8 (VMs) and what `bollard vm list` prints (issue 14 §4): every VM with its state, the
// node that runs it, its replica and whether it is in sync, its group and priority, and what is
// wrong (the VM alarms). Read from the agent's VM snapshot (runtime/vm-runtime.ts, in the status
// body and GET /vms) and the cluster-wide alarms. Pure.
import type { VmCatalog, VmFacts, VmNodeFacts } from "../ha/vm-types.ts";
import { cols, cut, type AlarmRow, type Model } from "./model.ts";
import type { Line } from "./vt100.ts";

/** runtime/vm-runtime.ts snapshot(), as it travels. */
export interface VmSnapshot {
  node: string;
  accel: string | null;
  accelWhy: string;
  leader: boolean;
  facts: VmNodeFacts | null;
  peers: Record<string, VmNodeFacts & { ageMs: number }>;
  catalog: VmCatalog;
  committed: { epoch: number; assignments: Record<string, string>; flags: Record<string, string> };
}

export interface VmRow {
  name: string;
  state: string;
  node: string | null;
  replica: string | null;
  /** the replica holds every write (vm-synced) */
  inSync: boolean;
  mirror: string;
  group: string | null;
  priority: number;
  memoryMb: number;
  /** what the VM alarms say, or a note (stopped by an operator, migrating) */
  problem: string | null;
}

export const vmsOf = (m: Model): VmSnapshot | null => (m.status.body?.vms as VmSnapshot | null | undefined) ?? null;

function factOf(s: VmSnapshot, node: string, vm: string): VmFacts | null {
  const r = node === s.node ? s.facts : s.peers[node];
  return r?.vms.find((x) => x.name === vm) ?? null;
}

export function vmRows(s: VmSnapshot, alarms: AlarmRow[]): VmRow[] {
  const f = s.committed.flags;
  return s.catalog.defs.map((d) => {
    const node = s.committed.assignments[`vm:${d.name}`] ?? null;
    const x = node ? factOf(s, node, d.name) : null;
    const replica = f[`vm-replica:${d.name}`] ?? null;
    const inSync = !!replica && f[`vm-synced:${d.name}`] === replica;
    const mig = f[`vm-mig:${d.name}`];
    let state = !node ? "unplaced" : x ? x.state : "unknown";
    if (x?.busy) state = `${state}/${x.busy}`;
    const m = x?.mirror;
    const mirror = !replica ? "-" : m && m.to === replica ? (m.state === "syncing" ? `syncing ${Math.round(m.done * 100)}%` : m.state) : inSync ? "in sync" : "none";
    const notes = [
      ...(`vm-stop:${d.name}` in f ? ["stopped by an operator"] : []),
      ...(mig ? [`migrating to ${mig}`] : []),
      ...(f[`vm-hold:${d.name}`] ? [`held from ${f[`vm-hold:${d.name}`]}`] : []),
      ...alarms.filter((a) => a.id.startsWith("vm-") && a.id.endsWith(`:${d.name}`)).map((a) => a.text),
    ];
    return { name: d.name, state, node, replica, inSync, mirror, group: d.group, priority: d.priority, memoryMb: d.memoryMb, problem: notes.length ? notes.join("; ") : null };
  });
}

const W = [10, 14, 7, 16, 9, 4, 5];

export function vmTable(rows: VmRow[], width = 80): string[] {
  const head = cols(["VM", "STATE", "NODE", "REPLICA", "GROUP", "PRIO", "MB"], W, width);
  const out = [head];
  for (const r of rows) {
    out.push(cols([r.name, r.state, r.node ?? "-", r.replica ? `${r.replica} ${r.inSync ? "sync" : r.mirror}` : "-", r.group ?? "-", String(r.priority), String(r.memoryMb)], W, width));
    if (r.problem) out.push(`  ${cut(r.problem, width - 2)}`);
  }
  return out;
}

export function vmsScreen(m: Model, rows: number): Line[] {
  const s = vmsOf(m);
  if (!s) return ["No VMs: the config has no vms: section (docs/vm.md)."];
  const r = vmRows(s, m.alarms.active);
  const running = r.filter((x) => x.state.startsWith("running")).length;
  const head = `${r.length} VMs, ${running} running; ${s.accel ? `QEMU under ${s.accel.toUpperCase()}` : "KVM probe under way"}; replicas in sync: ${r.filter((x) => x.inSync).length}`;
  return [cut(head, 80), "", ...vmTable(r)].slice(0, rows);
}
