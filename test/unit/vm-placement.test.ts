// VM placement (agent/ha/vm-placement.ts): hard and soft anti-affinity per group, memory
// capacity, the replica's node, and the start order (depends_on, then priority).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { chooseHost, chooseReplica, startOrder, type PlaceInput } from "../../agent/ha/vm-placement.ts";
import type { VmCatalog } from "../../agent/ha/vm-types.ts";
import { NODES, catalog, def } from "./vm-fixture.ts";

function input(c: VmCatalog, where: Record<string, string[]>, unfit: Record<string, string> = {}): PlaceInput {
  return { catalog: c, nodes: NODES, where: new Map(Object.entries(where)), unfit: (n) => unfit[n] ?? null };
}

const cps = (mode: "hard" | "soft") => catalog(["cp1", "cp2", "cp3", "cp4"].map((n) => def(n, { group: "cp" })), { cp: { antiAffinity: mode } });

const Anti = suite("placement: anti-affinity");

Anti("three control-plane VMs of a hard group land on three nodes", () => {
  const c = cps("hard");
  const where: Record<string, string[]> = {};
  for (const vm of ["cp1", "cp2", "cp3"]) {
    const r = chooseHost(c.defs.find((d) => d.name === vm)!, input(c, where));
    assert.ok(r.node, `${vm}: ${JSON.stringify(r)}`);
    where[vm] = [r.node!];
  }
  assert.equal(new Set(Object.values(where).flat()).size, 3);
});

Anti("a fourth of a hard group is refused, for anti-affinity, naming who holds each node", () => {
  const c = cps("hard");
  const r = chooseHost(c.defs[3]!, input(c, { cp1: ["node1"], cp2: ["node2"], cp3: ["node3"] }));
  assert.is(r.node, null);
  if (r.node === null) {
    assert.ok(r.capacity);
    assert.match(r.why, /node1: holds cp1 of group cp \(hard anti-affinity\)/);
    assert.match(r.why, /node3: holds cp3 of group cp/);
  }
});

Anti("a fourth of a soft group is placed beside one of them: the node with the most free memory", () => {
  const c = cps("soft");
  const big = { ...c, capacity: { node1: 1024, node2: 2048, node3: 1024 } };
  const r = chooseHost(c.defs[3]!, input(big, { cp1: ["node1"], cp2: ["node2"], cp3: ["node3"] }));
  assert.is(r.node, "node2");
});

Anti("soft anti-affinity prefers a node without a group member over a node with more memory", () => {
  const c = cps("soft");
  const big = { ...c, capacity: { node1: 4096, node2: 512, node3: 512 } };
  const r = chooseHost(c.defs[1]!, input(big, { cp1: ["node1"] }));
  assert.is(r.node, "node2");
});

Anti("a node being migrated to counts as holding the VM", () => {
  const c = cps("hard");
  const r = chooseHost(c.defs[2]!, input(c, { cp1: ["node1", "node3"], cp2: ["node2"] }));
  assert.is(r.node, null);
});

Anti.run();

const Cap = suite("placement: capacity, fitness, replicas");

Cap("memory: a node that cannot hold it is skipped, and none at all says so", () => {
  const c = catalog([def("a", { memoryMb: 600 }), def("b", { memoryMb: 600 }), def("c", { memoryMb: 600 }), def("d", { memoryMb: 600 })], {}, 1024);
  assert.is(chooseHost(c.defs[1]!, input(c, { a: ["node1"] })).node, "node2");
  const r = chooseHost(c.defs[3]!, input(c, { a: ["node1"], b: ["node2"], c: ["node3"] }));
  assert.is(r.node, null);
  if (r.node === null) { assert.ok(r.capacity); assert.match(r.why, /node1: 424 MB free, 600 MB needed/); }
});

Cap("unfit nodes (lost, fenced, maintenance) are never chosen; `only` restricts to the replica's node", () => {
  const c = catalog([def("a")]);
  assert.is(chooseHost(c.defs[0]!, input(c, {}, { node1: "is not heard" })).node, "node2");
  const r = chooseHost(c.defs[0]!, input(c, {}, { node2: "is in maintenance" }), { only: ["node2"] });
  assert.is(r.node, null);
  if (r.node === null) { assert.not.ok(r.capacity); assert.match(r.why, /node2: is in maintenance/); }
});

Cap("the replica goes to another fit node, one that could run the VM, with the fewest replicas", () => {
  const c = catalog([def("a", { memoryMb: 600 }), def("b", { memoryMb: 600 })], {}, 1024);
  const pi = input(c, { a: ["node1"], b: ["node2"] });
  // node2 could not run a (600 + 600 > 1024): node3
  assert.is(chooseReplica(c.defs[0]!, "node1", pi, new Map()), "node3");
  assert.is(chooseReplica(c.defs[0]!, "node1", pi, new Map([["node3", 5]])), "node3");
  const small = catalog([def("a", { memoryMb: 100 })]);
  assert.is(chooseReplica(small.defs[0]!, "node1", input(small, { a: ["node1"] }), new Map([["node2", 2]])), "node3");
  assert.is(chooseReplica(small.defs[0]!, "node1", input(small, { a: ["node1"] }, { node2: "lost", node3: "lost" }), new Map()), null);
});

Cap.run();

const Order = suite("placement: start order");

Order("depends_on first, then priority, then name; services do not take part", () => {
  const defs = [
    def("web", { dependsOn: ["app"], priority: 100 }),
    def("app", { dependsOn: ["db", "mysql"], priority: 1 }),
    def("db", { priority: 5 }),
    def("cp2", { priority: 50 }),
    def("cp1", { priority: 50 }),
    def("low", { priority: -10 }),
  ];
  assert.equal(startOrder(defs).map((d) => d.name), ["cp1", "cp2", "db", "app", "web", "low"]);
});

Order("a cycle (refused by the config check) still yields every VM once", () => {
  const defs = [def("a", { dependsOn: ["b"] }), def("b", { dependsOn: ["a"] }), def("c")];
  const o = startOrder(defs).map((d) => d.name);
  assert.equal([...o].sort(), ["a", "b", "c"]);
  assert.is(o[0], "c");
});

Order.run();
