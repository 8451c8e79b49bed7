// N+1 readiness for the VMs (issue 17 item 3, docs/readiness.md): if node X were lost now, could
// every VM it runs be restarted elsewhere? The same rule the leader's VM manager follows
// (vm-manager.ts): a lost VM restarts only on the node holding its in-sync replica
// (vm-synced:<vm>), and only where placement allows (vm-placement.ts chooseHost: memory
// capacity, hard anti-affinity). VMs are taken in start order (depends_on, then priority), each
// placed before the next is judged, as the restarts would fill the survivors. Pure.
import type { ClusterConfig } from "../bus/messages.ts";
import { inMaintenance, fenceHeld } from "./flags.ts";
import { stoppedByOperator, syncedOn, vmKey } from "./vm-flags.ts";
import { chooseHost, startOrder, type PlaceInput } from "./vm-placement.ts";
import type { VmCatalog } from "./vm-types.ts";

/** What losing a node would do to a VM, and why. */
export interface VmEffect {
  effect: string;
  why: string;
}

export interface VmReadinessInput {
  catalog: VmCatalog;
  committed: Pick<ClusterConfig, "members" | "assignments" | "flags">;
  alive: Record<string, boolean>;
}

/** The VMs `x` runs (assigned to it and not stopped by an operator). */
export function vmsOn(inp: VmReadinessInput, x: string): string[] {
  const f = inp.committed.flags;
  return inp.catalog.defs.filter((d) => inp.committed.assignments[vmKey(d.name)] === x && !stoppedByOperator(f, d.name)).map((d) => d.name);
}

/** For each VM on `x` that could not be restarted if `x` were lost: why. Empty: all of them could. */
export function vmBlocks(inp: VmReadinessInput, x: string): VmEffect[] {
  const mine = new Set(vmsOn(inp, x));
  if (!mine.size) return [];
  const f = inp.committed.flags;
  const where = new Map<string, string[]>();
  for (const d of inp.catalog.defs) {
    const h = inp.committed.assignments[vmKey(d.name)];
    if (h && h !== x && !stoppedByOperator(f, d.name)) where.set(d.name, [h]);
  }
  const pi: PlaceInput = {
    catalog: inp.catalog,
    nodes: inp.committed.members.map((m) => m.name),
    where,
    unfit: (n) => (n === x ? "is the node lost" : !inp.alive[n] ? "is down" : fenceHeld(f, n) ? "is being fenced or fenced" : inMaintenance(f, n) ? "is in maintenance" : null),
  };
  const out: VmEffect[] = [];
  for (const def of startOrder(inp.catalog.defs.filter((d) => mine.has(d.name)))) {
    const s = syncedOn(f, def.name);
    if (!s || s === x) {
      out.push({ effect: `leave VM ${def.name} down`, why: "no other node holds an in-sync copy of its disks (its mirror is not ready)" });
      continue;
    }
    const c = chooseHost(def, pi, { only: [s] });
    if (c.node === null) {
      out.push({ effect: `leave VM ${def.name} down`, why: `its replica's node cannot run it: ${c.why}` });
      continue;
    }
    where.set(def.name, [c.node]);
  }
  return out;
}
