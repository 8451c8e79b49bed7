// VM placement (DESIGN §5b), pure: on which node a VM runs and which node holds its replica,
// by hard and soft anti-affinity per group, memory capacity and priority; and the order in
// which VMs are started (depends_on first, then priority). The leader's VM manager
// (vm-manager.ts) calls it; nothing here reads a clock or the network.
import type { VmCatalog, VmDef } from "./vm-types.ts";

export interface PlaceInput {
  catalog: VmCatalog;
  /** the members, in their configured order (the last tie-break) */
  nodes: readonly string[];
  /** why a node cannot take a VM now (lost, fenced, in maintenance...), or null when it can */
  unfit(node: string): string | null;
  /** where each VM runs, will run, or is being migrated to (each counts on every node listed) */
  where: ReadonlyMap<string, readonly string[]>;
}

export type Choice = { node: string } | { node: null; why: string; capacity: boolean };

const defOf = (c: VmCatalog, vm: string): VmDef | undefined => c.defs.find((d) => d.name === vm);

/** Memory (MB) the VMs placed on `node` take. */
export function usedMemory(inp: PlaceInput, node: string, except?: string): number {
  let mb = 0;
  for (const [vm, nodes] of inp.where) if (vm !== except && nodes.includes(node)) mb += defOf(inp.catalog, vm)?.memoryMb ?? 0;
  return mb;
}

/** Other VMs of `group` on `node`. */
export function groupMates(inp: PlaceInput, node: string, group: string, except: string): string[] {
  const out: string[] = [];
  for (const [vm, nodes] of inp.where) if (vm !== except && nodes.includes(node) && defOf(inp.catalog, vm)?.group === group) out.push(vm);
  return out;
}

/**
 * The node for `vm`: fit (unfit() null), enough free memory, no other VM of its group when the
 * group's anti-affinity is hard; then the fewest VMs of its group (soft anti-affinity), the most
 * free memory, member order. `only` restricts the candidates (a restart: the synced replica).
 * When none fits: why, and whether it is for capacity or anti-affinity (the alarm).
 */
export function chooseHost(vm: VmDef, inp: PlaceInput, o: { only?: readonly string[]; exclude?: readonly string[] } = {}): Choice {
  const group = vm.group;
  const hard = group !== null && inp.catalog.groups[group]?.antiAffinity === "hard";
  const why: string[] = [];
  let capacity = false;
  const ok: { node: string; mates: number; free: number; i: number }[] = [];
  inp.nodes.forEach((node, i) => {
    if (o.only && !o.only.includes(node)) return;
    if (o.exclude?.includes(node)) return;
    const no = inp.unfit(node);
    if (no) return void why.push(`${node}: ${no}`);
    const free = (inp.catalog.capacity[node] ?? 0) - usedMemory(inp, node, vm.name);
    if (free < vm.memoryMb) {
      capacity = true;
      return void why.push(`${node}: ${free} MB free, ${vm.memoryMb} MB needed`);
    }
    const mates = group ? groupMates(inp, node, group, vm.name) : [];
    if (hard && mates.length) {
      capacity = true;
      return void why.push(`${node}: holds ${mates.join(",")} of group ${group} (hard anti-affinity)`);
    }
    ok.push({ node, mates: mates.length, free, i });
  });
  if (o.only && !o.only.length) why.push("no node holds a complete copy of its disks");
  ok.sort((a, b) => a.mates - b.mates || b.free - a.free || a.i - b.i);
  if (ok.length) return { node: ok[0]!.node };
  return { node: null, why: why.join("; ") || "no node", capacity };
}

/**
 * The node for `vm`'s replica: fit, not its holder; the fewest replicas already there
 * (`replicas`: node -> how many it holds), then member order. Memory is not needed there
 * (only disk space, which is not modelled), but a node that could run it is preferred: a
 * restart goes where the replica is.
 */
export function chooseReplica(vm: VmDef, holder: string, inp: PlaceInput, replicas: ReadonlyMap<string, number>, exclude: readonly string[] = []): string | null {
  const c = inp.nodes
    .map((node, i) => ({ node, i }))
    .filter(({ node }) => node !== holder && !exclude.includes(node) && inp.unfit(node) === null)
    .map((x) => ({ ...x, could: chooseHost(vm, inp, { only: [x.node] }).node !== null, n: replicas.get(x.node) ?? 0 }));
  c.sort((a, b) => Number(b.could) - Number(a.could) || a.n - b.n || a.i - b.i);
  return c[0]?.node ?? null;
}

/**
 * The order VMs are started in: every VM after the VMs it depends on, and among those ready
 * at the same time the higher priority first, then the name. Services (mysql, redis) are not
 * VMs and do not take part. A cycle (refused by the config check) is broken by priority.
 */
export function startOrder(defs: readonly VmDef[]): VmDef[] {
  const names = new Set(defs.map((d) => d.name));
  const left = new Map(defs.map((d) => [d.name, d.dependsOn.filter((x) => names.has(x) && x !== d.name)]));
  const out: VmDef[] = [];
  const byPrio = (a: VmDef, b: VmDef) => b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  while (out.length < defs.length) {
    const done = new Set(out.map((d) => d.name));
    const ready = defs.filter((d) => !done.has(d.name) && left.get(d.name)!.every((x) => done.has(x))).sort(byPrio);
    const next = ready[0] ?? defs.filter((d) => !done.has(d.name)).sort(byPrio)[0]!;
    out.push(next);
  }
  return out;
}
