// What the VM unit tests share: a catalog, a NodeView of a cluster, VM reports.
import type { ClusterConfig } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import type { VmCatalog, VmDef, VmFacts, VmNodeFacts } from "../../agent/ha/vm-types.ts";

export const NODES = ["node1", "node2", "node3"];

export function def(name: string, o: Partial<VmDef> = {}): VmDef {
  return { name, vcpus: 1, memoryMb: 128, disks: [{ name: `${name}-data`, sizeMb: 64, image: null }], nics: [], group: null, priority: 0, dependsOn: [], autostart: true, kernel: null, ...o };
}

export function catalog(defs: VmDef[], groups: VmCatalog["groups"] = {}, capacity = 1024): VmCatalog {
  return { defs, groups, capacity: Object.fromEntries(NODES.map((n) => [n, capacity])) };
}

export function cfg(assignments: Record<string, string> = {}, flags: Record<string, string> = {}, epoch = 10): ClusterConfig {
  return { epoch, term: 2, members: NODES.map((n) => ({ name: n, bus: `${n}:1883` })), assignments, flags };
}

/** node `self`'s view: leader (or follower) acting on `c`, hearing `alive` (itself always). */
export function view(self: string, c: ClusterConfig, alive: string[] = NODES, o: Partial<NodeView> = {}): NodeView {
  return {
    node: self, role: "leader", term: 2, leader: self, quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true,
    config: c, committed: c, counters: {},
    peers: NODES.filter((n) => n !== self).map((n) => ({ name: n, alive: alive.includes(n), lastHeardMs: alive.includes(n) ? 100 : 5000, term: 2, role: "follower" as const, leader: self, skewMs: 0 })),
    ...o,
  };
}

export function vmFact(name: string, state: VmFacts["state"], o: Partial<VmFacts> = {}): VmFacts {
  return { name, state, mirror: null, fails: 0, ...(state === "running" ? { inst: "1/1", startedAt: 1000 } : {}), ...o };
}

export function report(vms: VmFacts[] = [], o: Partial<VmNodeFacts> = {}): VmNodeFacts {
  return { epoch: 10, defs: "d", storage: true, exports: [], vms, ...o };
}
