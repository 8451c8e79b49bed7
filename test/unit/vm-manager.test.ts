// The leader's VM manager (agent/ha/vm-manager.ts) and its node fencing (vm-fencing.ts), step
// by step: placement in dependency order, restart after a fence proof (and never without one),
// the hold-then-move of a VM its node gave up on, replicas chosen, marked in sync and outdated,
// anti-flapping, maintenance drains and migrations, and the problems the alarms show.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterConfig, Command } from "../../agent/bus/messages.ts";
import { DEFAULT_VM_TIMING, DOWN_ALARM_MS, VmManager, type VmAction, type VmInput } from "../../agent/ha/vm-manager.ts";
import type { VmCatalog, VmNodeFacts } from "../../agent/ha/vm-types.ts";
import { NODES, catalog, cfg, def, report, view, vmFact } from "./vm-fixture.ts";

const WALL = 1.8e12;

function harness() {
  const events: string[] = [];
  const m = new VmManager("node1", DEFAULT_VM_TIMING, (k, d) => events.push(`${k}: ${d}`));
  return { m, events };
}

function input(c: ClusterConfig, cat: VmCatalog, reports: Record<string, VmNodeFacts>, o: Partial<VmInput> & { alive?: string[] } = {}): VmInput {
  const alive = o.alive ?? NODES;
  return {
    now: 50_000, wall: WALL, view: view("node1", c, alive), catalog: cat, defs: "d",
    reports: new Map(Object.entries(reports).map(([n, r]) => [n, { r, at: 49_900 }])),
    service: () => null, probeOkAt: () => null, canFence: () => null, ...o,
  };
}

const commitOf = (as: VmAction[]): Extract<Command, { op: "apply" }> | null => {
  const c = as.find((a) => a.kind === "commit");
  return c && c.kind === "commit" && c.cmd.op === "apply" ? c.cmd : null;
};

const all = (vms: VmNodeFacts["vms"] = []) => Object.fromEntries(NODES.map((n) => [n, report(n === "node1" ? vms : [])]));

const Place = suite("vm manager: placement");

Place("a fresh cluster: the VMs with nothing to wait for are placed, each with a replica, in one commit", () => {
  const { m } = harness();
  const cat = catalog([def("cp1", { group: "cp" }), def("cp2", { group: "cp" }), def("cp3", { group: "cp" }), def("app", { dependsOn: ["cp1"] })], { cp: { antiAffinity: "hard" } });
  const c = commitOf(m.tick(input(cfg(), cat, all())))!;
  assert.ok(c, "a commit");
  assert.equal(Object.keys(c.assign!).sort(), ["vm:cp1", "vm:cp2", "vm:cp3"]);
  assert.equal(new Set(Object.values(c.assign!)).size, 3, "three nodes");
  for (const vm of ["cp1", "cp2", "cp3"]) {
    assert.ok(c.flags![`vm-replica:${vm}`], `${vm} has a replica`);
    assert.is.not(c.flags![`vm-replica:${vm}`], c.assign![`vm:${vm}`]);
  }
  assert.equal(m.problems(), [], "a VM down for a moment is no problem yet");
  m.commitDone(true);
  m.tick(input(cfg(), cat, all(), { now: 50_000 + DOWN_ALARM_MS }));
  const app = m.problems().find((p) => p.vm === "app")!;
  assert.is(app.kind, "down", "app waits for cp1");
  assert.match(app.why, /waiting for cp1 \(not placed\)/);
});

Place("one commit at a time: nothing more until the last one is done", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  assert.ok(commitOf(m.tick(input(cfg(), cat, all()))));
  assert.is(commitOf(m.tick(input(cfg(), cat, all()))), null);
  m.commitDone(true);
  assert.ok(commitOf(m.tick(input(cfg(), cat, all()))));
});

Place("a fourth of a hard group on three nodes: not placed, a no-capacity problem", () => {
  const { m } = harness();
  const cat = catalog(["cp1", "cp2", "cp3", "cp4"].map((n) => def(n, { group: "cp" })), { cp: { antiAffinity: "hard" } });
  const c = cfg({ "vm:cp1": "node1", "vm:cp2": "node2", "vm:cp3": "node3" }, { "vm-replica:cp1": "node2", "vm-synced:cp1": "node2", "vm-replica:cp2": "node3", "vm-synced:cp2": "node3", "vm-replica:cp3": "node1", "vm-synced:cp3": "node1" });
  const running = (n: string, vm: string) => report([vmFact(vm, "running", { mirror: { to: "x", state: "ready", done: 1 } })]);
  const reps = { node1: running("node1", "cp1"), node2: running("node2", "cp2"), node3: running("node3", "cp3") };
  for (const [n, vm] of [["node1", "cp1"], ["node2", "cp2"], ["node3", "cp3"]] as const) reps[n].vms[0]!.mirror!.to = c.flags[`vm-replica:${vm}`]!;
  assert.is(commitOf(m.tick(input(c, cat, reps))), null);
  const p = m.problems().find((x) => x.vm === "cp4")!;
  assert.is(p.kind, "no-capacity");
  assert.match(p.why, /hard anti-affinity/);
});

Place("a VM that depends on mysql waits until clients can write MySQL", () => {
  const { m } = harness();
  const cat = catalog([def("app", { dependsOn: ["mysql"] })]);
  assert.is(commitOf(m.tick(input(cfg(), cat, all(), { service: () => "node2, the primary, is not heard" }))), null);
  m.tick(input(cfg(), cat, all(), { now: 50_000 + DOWN_ALARM_MS, service: () => "node2, the primary, is not heard" }));
  assert.match(m.problems()[0]!.why, /waiting for mysql \(node2, the primary, is not heard\)/);
  assert.ok(commitOf(m.tick(input(cfg(), cat, all()))));
});

Place("a node holding other definitions gets no VM", () => {
  const { m } = harness();
  const reps = all();
  reps.node1 = report([], { defs: "other" });
  reps.node2 = report([], { defs: "other" });
  const c = commitOf(m.tick(input(cfg(), catalog([def("a")]), reps)))!;
  assert.equal(c.assign, { "vm:a": "node3" });
});

Place.run();

const Restart = suite("vm manager: restart after a fence");

const cat2 = () => catalog([def("db", { priority: 10 }), def("app", { dependsOn: ["db"] })]);
const onNode2 = (extra: Record<string, string> = {}) => cfg({ "vm:db": "node2", "vm:app": "node2" }, { "vm-replica:db": "node3", "vm-synced:db": "node3", "vm-replica:app": "node3", "vm-synced:app": "node3", ...extra });

Restart("a lost node's VMs stay where they are until the fence proof is committed", () => {
  const { m } = harness();
  const c = onNode2();
  const as = m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] }));
  const cmd = commitOf(as)!;
  assert.equal(cmd.flags, { "fencing:node2": String(Math.round(WALL)) }, "fencing:node2 first, nothing else");
  m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"], now: 50_000 + DOWN_ALARM_MS }));
  assert.equal(m.problems().map((p) => p.kind), ["down", "down"]);
});

Restart("the fence: fencing:X committed, then the fence action, then fenced:X with its proof", () => {
  const { m } = harness();
  const c = onNode2({ "fencing:node2": "1" });
  const as = m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] }));
  const f = as.find((a) => a.kind === "fence");
  assert.ok(f && f.kind === "fence" && f.node === "node2");
  assert.is(commitOf(as), null, "no VM moves before the proof");
  m.fenceDone("node2", true, [{ level: "ipmi", ok: true, detail: "chassis power off; power status: off", ms: 180 }], 50_100, (f as { id: number }).id);
  const cmd = commitOf(m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] })))!;
  assert.equal(cmd.flags, { "fencing:node2": null, "fenced:node2": "ipmi: chassis power off; power status: off" });
});

Restart("a lost node that holds MySQL is the data path's to fence: the VM manager only waits", () => {
  const { m } = harness();
  const c = onNode2();
  c.assignments.mysql = "node2";
  assert.equal(m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] })), []);
});

Restart("a silent node that still answers the leader's probe is a stalled agent: not fenced yet", () => {
  const { m } = harness();
  assert.equal(m.tick(input(onNode2(), cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"], probeOkAt: () => 49_800 })), []);
  assert.match(m.fencing().node2!, /stalled agent/);
});

Restart("with fenced:X, its VMs run again on their synced replica, in dependency order", () => {
  const { m } = harness();
  const c = onNode2({ "fenced:node2": "ipmi: off" });
  const cmd = commitOf(m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] })))!;
  assert.equal(cmd.assign, { "vm:db": "node3" }, "db first: app waits for it to run");
  assert.is(cmd.flags!["vm-moved:db"], String(Math.round(WALL)));
  assert.is(cmd.flags!["vm-synced:db"], null);
  m.commitDone(true);
  const c2 = onNode2({ "fenced:node2": "ipmi: off", "vm-moved:db": String(WALL) });
  c2.assignments["vm:db"] = "node3";
  delete c2.flags["vm-synced:db"]; delete c2.flags["vm-replica:db"];
  assert.is(commitOf(m.tick(input(c2, cat2(), { node1: report(), node3: report([vmFact("db", "stopped", { busy: "start" })]) }, { alive: ["node1", "node3"] }))), null);
  m.tick(input(c2, cat2(), { node1: report(), node3: report([vmFact("db", "stopped", { busy: "start" })]) }, { alive: ["node1", "node3"], now: 50_000 + DOWN_ALARM_MS }));
  assert.match(m.problems().find((p) => p.vm === "app")!.why, /waiting for db \(stopped on node3\)/);
  const cmd2 = commitOf(m.tick(input(c2, cat2(), { node1: report(), node3: report([vmFact("db", "running")]) }, { alive: ["node1", "node3"] })))!;
  assert.is(cmd2.assign!["vm:app"], "node3");
});

Restart("no complete copy elsewhere: it stays down (restart failed) until its node is back", () => {
  const { m } = harness();
  const c = onNode2({ "fenced:node2": "ipmi: off" });
  delete c.flags["vm-synced:db"];
  commitOf(m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] })));
  const p = m.problems().find((x) => x.vm === "db")!;
  assert.is(p.kind, "restart-failed");
  assert.match(p.why, /no other node holds a complete copy of its disks/);
});

Restart("anti-flapping: restarted elsewhere a minute ago, not again until an operator's vm start", () => {
  const { m } = harness();
  const c = onNode2({ "fenced:node2": "ipmi: off", "vm-moved:db": String(WALL - 60_000), "vm-moved:app": String(WALL - 60_000) });
  assert.is(commitOf(m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] }))), null);
  assert.match(m.problems().find((x) => x.vm === "db")!.why, /anti-flapping/);
  c.flags["vm-start:db"] = String(WALL - 1000);
  assert.is(commitOf(m.tick(input(c, cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] })))!.assign!["vm:db"], "node3");
});

Restart("disarmed: nothing is fenced or restarted", () => {
  const { m } = harness();
  assert.equal(m.tick(input(onNode2({ ha: "disarmed" }), cat2(), { node1: report(), node3: report() }, { alive: ["node1", "node3"] })), []);
});

Restart.run();

const Hold = suite("vm manager: a VM its node gave up on");

Hold("failed on a live node: first a hold, then the move once the node reports it stopped under the hold", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const c = cfg({ "vm:a": "node2" }, { "vm-replica:a": "node3", "vm-synced:a": "node3" }, 10);
  const failed = { node1: report(), node2: report([vmFact("a", "failed", { error: "qemu exited" })]), node3: report() };
  const cmd = commitOf(m.tick(input(c, cat, failed)))!;
  assert.equal(cmd.flags, { "vm-hold:a": "node2" });
  assert.is(cmd.assign, undefined, "not moved yet");
  m.commitDone(true);
  const held = cfg({ "vm:a": "node2" }, { "vm-replica:a": "node3", "vm-synced:a": "node3", "vm-hold:a": "node2" }, 11);
  // a report read under the old epoch is no proof
  assert.is(commitOf(m.tick(input(held, cat, failed))), null);
  const fresh = { ...failed, node2: report([vmFact("a", "failed")], { epoch: 11 }) };
  const mv = commitOf(m.tick(input(held, cat, fresh)))!;
  assert.equal(mv.assign, { "vm:a": "node3" });
  assert.is(mv.flags!["vm-hold:a"], null);
});

Hold("a start under way is no proof", () => {
  const { m } = harness();
  const held = cfg({ "vm:a": "node2" }, { "vm-replica:a": "node3", "vm-synced:a": "node3", "vm-hold:a": "node2" }, 11);
  assert.is(commitOf(m.tick(input(held, catalog([def("a")]), { node1: report(), node2: report([vmFact("a", "stopped", { busy: "start" })], { epoch: 12 }), node3: report() }))), null);
});

Hold.run();

const Mirror = suite("vm manager: replicas");

const runningOn1 = (mirror: VmNodeFacts["vms"][0]["mirror"]) => ({ node1: report([vmFact("a", "running", { mirror })]), node2: report(), node3: report() });

Mirror("a ready mirror marks the replica in sync; a broken one outdates it", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" });
  assert.equal(commitOf(m.tick(input(c, cat, runningOn1({ to: "node2", state: "ready", done: 1 }))))!.flags, { "vm-synced:a": "node2" });
  m.commitDone(true);
  const s = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2" });
  assert.equal(commitOf(m.tick(input(s, cat, runningOn1({ to: "node2", state: "broken", done: 1, error: "job failed" }))))!.flags, { "vm-synced:a": null });
  m.commitDone(true);
  assert.is(commitOf(m.tick(input(s, cat, runningOn1({ to: "node2", state: "syncing", done: 0.5 })))), null, "syncing again from a synced copy stays synced");
});

Mirror("the replica's node lost: outdated at once; then a new replica on the third node", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const s = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2" });
  const reps = { node1: report([vmFact("a", "running", { mirror: { to: "node2", state: "ready", done: 1 } })]), node3: report() };
  assert.equal(commitOf(m.tick(input(s, cat, reps, { alive: ["node1", "node3"] })))!.flags, { "vm-replica:a": null, "vm-synced:a": null });
  m.commitDone(true);
  const o = cfg({ "vm:a": "node1" });
  assert.equal(commitOf(m.tick(input(o, cat, reps, { alive: ["node1", "node3"] })))!.flags, { "vm-replica:a": "node3", "vm-synced:a": null });
});

Mirror("a replica lost and rebuilt between two alarm judgements is still judged once, then no more", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const alive = { alive: ["node1", "node3"] };
  const reps = (to: string, state: "ready" | "syncing") => ({ node1: report([vmFact("a", "running", { mirror: { to, state, done: 1 } })]), node3: report() });
  assert.equal(m.judged(), [], "nothing yet");
  m.tick(input(cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2" }), cat, reps("node2", "ready"), alive));
  m.commitDone(true);
  m.tick(input(cfg({ "vm:a": "node1" }), cat, reps("node2", "ready"), { ...alive, now: 50_100 }));
  assert.is(m.problems()[0]?.kind, "mirror-degraded", "lost: degraded at once");
  m.commitDone(true);
  m.tick(input(cfg({ "vm:a": "node1" }, { "vm-replica:a": "node3" }), cat, reps("node3", "ready"), { ...alive, now: 50_200 }));
  m.commitDone(true);
  m.tick(input(cfg({ "vm:a": "node1" }, { "vm-replica:a": "node3", "vm-synced:a": "node3" }), cat, reps("node3", "ready"), { ...alive, now: 50_300 }));
  assert.equal(m.problems(), [], "in sync with node3 again");
  const j = m.judged();
  assert.is(j.length, 1);
  assert.is(j[0]!.kind, "mirror-degraded");
  assert.match(j[0]!.why, /its replica on node2 was lost/);
  assert.equal(m.judged(), [], "handed over once");
});

Mirror("without a replica in sync for degraded_alarm_ms: the mirror-degraded problem", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" });
  const reps = runningOn1({ to: "node2", state: "syncing", done: 0.25 });
  m.tick(input(c, cat, reps));
  assert.equal(m.problems(), []);
  m.tick(input(c, cat, reps, { now: 50_000 + DEFAULT_VM_TIMING.degradedAlarmMs }));
  assert.is(m.problems()[0]?.kind, "mirror-degraded");
  assert.match(m.problems()[0]!.why, /mirror to node2 syncing \(25 %\)/);
});

Mirror.run();

const Maint = suite("vm manager: maintenance and migration");

Maint("maintenance drains by live migration to the synced replica", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2", "maint:node1": "on" });
  assert.equal(commitOf(m.tick(input(c, cat, runningOn1({ to: "node2", state: "ready", done: 1 }))))!.flags, { "vm-mig:a": "node2" });
});

Maint("a hard-group VM with nowhere to go is stopped where it is until maintenance ends", () => {
  const { m } = harness();
  const cat = catalog(["cp1", "cp2", "cp3"].map((n) => def(n, { group: "cp" })), { cp: { antiAffinity: "hard" } });
  const c = cfg({ "vm:cp1": "node1", "vm:cp2": "node2", "vm:cp3": "node3" }, { "maint:node1": "on", "vm-replica:cp1": "node2", "vm-synced:cp1": "node2" });
  const reps = { node1: report([vmFact("cp1", "running", { mirror: { to: "node2", state: "ready", done: 1 } })]), node2: report([vmFact("cp2", "running")]), node3: report([vmFact("cp3", "running")]) };
  const cmd = commitOf(m.tick(input(c, cat, reps)))!;
  assert.is(cmd.flags!["vm-hold:cp1"], "node1");
  assert.is(m.problems().find((p) => p.vm === "cp1")?.kind, "no-capacity");
  m.commitDone(true);
  // maintenance over and the VM stopped: the hold is lifted, it runs on node1 again
  const after = cfg({ "vm:cp1": "node1", "vm:cp2": "node2", "vm:cp3": "node3" }, { "vm-hold:cp1": "node1", "vm-replica:cp1": "node2", "vm-synced:cp1": "node2" });
  const stopped = { ...reps, node1: report([vmFact("cp1", "stopped")]) };
  assert.is(commitOf(m.tick(input(after, cat, stopped)))!.flags!["vm-hold:cp1"], null);
});

Maint("migration: the replica moves to the target first; once the source completed, the target runs it", () => {
  const { m } = harness();
  const cat = catalog([def("a")]);
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2", "vm-mig:a": "node3" });
  assert.equal(commitOf(m.tick(input(c, cat, runningOn1({ to: "node2", state: "ready", done: 1 }))))!.flags, { "vm-replica:a": "node3", "vm-synced:a": null });
  m.commitDone(true);
  const t = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node3", "vm-synced:a": "node3", "vm-mig:a": "node3" });
  const done = { node1: report([vmFact("a", "migrated", { migration: { to: "node3", status: "completed", ms: 2100, downtimeMs: 40 } })]), node2: report(), node3: report([vmFact("a", "incoming", { incoming: { port: 49152, done: true } })]) };
  const cmd = commitOf(m.tick(input(t, cat, done)))!;
  assert.equal(cmd.assign, { "vm:a": "node3" });
  assert.equal(cmd.flags, { "vm-mig:a": null, "vm-replica:a": null, "vm-synced:a": null });
});

Maint("a migration to a node that cannot take it is refused", () => {
  const { m, events } = harness();
  const cat = catalog([def("a", { memoryMb: 900 }), def("b", { memoryMb: 900 })]);
  const c = cfg({ "vm:a": "node1", "vm:b": "node2" }, { "vm-mig:a": "node2" });
  const reps = { node1: report([vmFact("a", "running")]), node2: report([vmFact("b", "running")]), node3: report() };
  assert.is(commitOf(m.tick(input(c, cat, reps)))!.flags!["vm-mig:a"], null);
  assert.ok(events.some((e) => /migration of a to node2 refused: node2: 124 MB free/.test(e)), events.join("\n"));
});

Maint("soft anti-affinity: after maintenance, a VM sharing a node with its group moves back", () => {
  const { m } = harness();
  const cat = catalog([def("w1", { group: "web" }), def("w2", { group: "web" })], { web: { antiAffinity: "soft" } });
  const c = cfg({ "vm:w1": "node2", "vm:w2": "node2" }, { "vm-replica:w1": "node1", "vm-synced:w1": "node1", "vm-replica:w2": "node3", "vm-synced:w2": "node3" });
  const reps = { node1: report(), node2: report([vmFact("w1", "running", { mirror: { to: "node1", state: "ready", done: 1 } }), vmFact("w2", "running", { mirror: { to: "node3", state: "ready", done: 1 } })]), node3: report() };
  const cmd = commitOf(m.tick(input(c, cat, reps)))!;
  assert.equal(Object.keys(cmd.flags!).filter((k) => k.startsWith("vm-mig:")).length, 1);
});

Maint.run();
