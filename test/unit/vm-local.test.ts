// The local VM manager (agent/ha/vm-local.ts): what a node does with its VMs for a committed
// register: kill everything when fenced, nothing when not current, start what it holds (after
// giving up its replica role), back off and give up, kill what runs elsewhere, serve replicas,
// mirror, pause on a broken mirror until outdated, migrate, and continue a migrated guest.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterConfig } from "../../agent/bus/messages.ts";
import { VmLocal, type VmLocalAction } from "../../agent/ha/vm-local.ts";
import type { VmNodeFacts } from "../../agent/ha/vm-types.ts";
import { catalog, cfg, def, report, view, vmFact } from "./vm-fixture.ts";

const cat = catalog([def("a"), def("b")]);

function plan(l: VmLocal, c: ClusterConfig, facts: VmNodeFacts, o: { peers?: Record<string, VmNodeFacts>; dead?: string[]; now?: number; busy?: string[]; self?: string; v?: Parameters<typeof view>[3] } = {}): VmLocalAction[] {
  return l.plan({
    now: o.now ?? 10_000, view: view(o.self ?? "node1", c, undefined, { role: "follower", ...o.v }), catalog: cat, facts,
    peer: (n) => o.peers?.[n] ?? null, alive: (n) => !o.dead?.includes(n),
  }, new Set(o.busy ?? []));
}
const brief = (as: VmLocalAction[]) => as.map((a) => `${a.vm} ${a.do}${"to" in a ? ` ${a.to}` : ""}`);

const Safety = suite("vm local: safety");

Safety("self-fenced: every QEMU is killed at once, nothing else", () => {
  const l = new VmLocal("node1");
  const f = report([vmFact("a", "running"), vmFact("b", "incoming")]);
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }), f, { v: { selfFenced: true } })), ["a kill", "b kill"]);
});

Safety("being fenced (fencing:self in the register): the same", () => {
  const l = new VmLocal("node1");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }, { "fencing:node1": "1" }), report([vmFact("a", "paused")]))), ["a kill"]);
});

Safety("without the live leader's latest commit: nothing is started, nothing killed", () => {
  const l = new VmLocal("node1");
  assert.equal(plan(l, cfg({ "vm:a": "node1", "vm:b": "node2" }), report([vmFact("b", "running")]), { v: { current: false } }), []);
});

Safety("a VM the register places elsewhere is killed; a migrated source quits", () => {
  const l = new VmLocal("node1");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node2", "vm:b": "node2" }), report([vmFact("a", "running"), vmFact("b", "migrated")]))), ["a kill", "b quit"]);
});

Safety("a VM held away from this node, or stopped by an operator, is stopped (gracefully)", () => {
  const l = new VmLocal("node1");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1", "vm:b": "node1" }, { "vm-hold:a": "node1", "vm-stop:b": "operator" }), report([vmFact("a", "running"), vmFact("b", "running")]))), ["a stop", "b stop"]);
});

Safety("a VM with an action under way is left alone", () => {
  const l = new VmLocal("node1");
  assert.equal(plan(l, cfg({ "vm:a": "node1" }), report([]), { busy: ["a"] }), []);
});

Safety.run();

const Start = suite("vm local: starts");

Start("the holder starts a stopped VM; as its old replica it stops serving the disks first", () => {
  const l = new VmLocal("node1");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }), report([]))), ["a start"]);
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }), report([], { exports: ["a"] }))), ["a unexport"]);
});

Start("with a replica in sync, the guest starts held until its mirror is attached there; without that replica reachable, it waits", () => {
  const l = new VmLocal("node1");
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2" });
  assert.equal(plan(l, c, report([]), { peers: { node2: report([], { exports: ["a"] }) } }).map((a) => ({ do: a.do, mirror: (a as { mirror?: string }).mirror })), [{ do: "start", mirror: "node2" }]);
  assert.equal(plan(l, c, report([]), { peers: { node2: report([]) } }), [], "the replica does not serve the disks: wait for the leader to outdate it");
});

Start("failures back off, and after three it gives up until an operator's vm start", () => {
  const l = new VmLocal("node1");
  const c = cfg({ "vm:a": "node1" });
  l.failed("a", 10_000, c.flags, "node1");
  assert.equal(brief(plan(l, c, report([]), { now: 10_000 })), ["a start"], "once at once");
  l.failed("a", 10_100, c.flags, "node1");
  assert.equal(plan(l, c, report([]), { now: 10_500 }), [], "then backing off");
  assert.equal(brief(plan(l, c, report([]), { now: 12_200 })), ["a start"]);
  l.failed("a", 18_000, c.flags, "node1");
  assert.ok(l.gaveUp("a", 30_000, c.flags, "node1"));
  assert.equal(plan(l, c, report([]), { now: 30_000 }), []);
  const acked = cfg({ "vm:a": "node1" }, { "vm-start:a": "1800000000000" });
  assert.not.ok(l.gaveUp("a", 30_000, acked.flags, "node1"));
  assert.equal(brief(plan(l, acked, report([]), { now: 30_000 })), ["a start"]);
});

Start("a restart asked after the instance started stops it; it starts again next", () => {
  const l = new VmLocal("node1");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }, { "vm-restart:a": "2000" }), report([vmFact("a", "running", { startedAt: 1000 })]))), ["a stop"]);
  assert.equal(plan(l, cfg({ "vm:a": "node1" }, { "vm-restart:a": "500" }), report([vmFact("a", "running", { startedAt: 1000 })])), []);
});

Start.run();

const Rep = suite("vm local: replicas and mirrors");

Rep("the replica's node serves the disks; a node that is not the replica any more stops", () => {
  const l = new VmLocal("node2");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" }), report([]), { self: "node2" })), ["a export"]);
  assert.equal(plan(l, cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" }), report([], { storage: false }), { self: "node2" }), [], "no storage daemon: wait");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }, { "vm-replica:a": "node3" }), report([], { exports: ["a"] }), { self: "node2" })), ["a unexport"]);
});

Rep("the holder mirrors to the replica once it serves the disks; a moved replica: unmirror first", () => {
  const l = new VmLocal("node1");
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" });
  assert.equal(plan(l, c, report([vmFact("a", "running")]), { peers: { node2: report([]) } }), [], "not exported yet");
  assert.equal(brief(plan(l, c, report([vmFact("a", "running")]), { peers: { node2: report([], { exports: ["a"] }) } })), ["a mirror node2"]);
  assert.equal(brief(plan(l, c, report([vmFact("a", "running", { mirror: { to: "node3", state: "ready", done: 1 } })]))), ["a unmirror"]);
});

Rep("the mirror action carries the copy the replica says it holds (an incremental rebuild needs it); none said: null", () => {
  const l = new VmLocal("node1");
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" });
  const copyOf = (peer: ReturnType<typeof report>) => plan(l, c, report([vmFact("a", "running")]), { peers: { node2: peer } }).map((a) => (a as { copy?: string | null }).copy);
  assert.equal(copyOf(report([], { exports: ["a"], copies: { a: "4x9-1" } })), ["4x9-1"]);
  assert.equal(copyOf(report([], { exports: ["a"] })), [null]);
});

Rep("a broken mirror while the register calls the replica synced: pause; outdated: continue, then mirror again", () => {
  const l = new VmLocal("node1");
  const synced = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2" });
  const broken = { to: "node2", state: "broken" as const, done: 1, error: "job failed: Input/output error" };
  assert.equal(brief(plan(l, synced, report([vmFact("a", "running", { mirror: broken })]))), ["a pause"]);
  assert.equal(plan(l, synced, report([vmFact("a", "running", { mirror: { ...broken, error: "stalled: node2:10809 does not answer" } })])), [], "a stalled target is not paused (the pause would hang)");
  assert.equal(plan(l, synced, report([vmFact("a", "paused", { mirror: broken, pausedForMirror: true })])), [], "paused until outdated");
  const outdated = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2" });
  assert.equal(brief(plan(l, outdated, report([vmFact("a", "paused", { mirror: broken, pausedForMirror: true })]))), ["a cont"]);
  assert.equal(brief(plan(l, outdated, report([vmFact("a", "running", { mirror: broken })]))), ["a unmirror"]);
});

Rep.run();

const Mig = suite("vm local: live migration");

Mig("the target starts a QEMU waiting for the migration, the source migrates, the target continues once committed", () => {
  const c = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-synced:a": "node2", "vm-mig:a": "node2" });
  const target = new VmLocal("node2");
  assert.equal(brief(plan(target, c, report([], { exports: ["a"] }), { self: "node2" })), ["a incoming"]);
  const incoming = report([vmFact("a", "incoming", { incoming: { port: 49152, done: false } })], { exports: ["a"] });
  assert.equal(plan(target, c, incoming, { self: "node2" }), [], "waits, and keeps serving the disks");
  const source = new VmLocal("node1");
  const acts = plan(source, c, report([vmFact("a", "running", { mirror: { to: "node2", state: "ready", done: 1 } })]), { peers: { node2: incoming } });
  assert.equal(acts, [{ vm: "a", do: "migrate", to: "node2", port: 49152, why: "live migration to node2 (its replica, in sync)" }]);
  const moved = cfg({ "vm:a": "node2" });
  assert.equal(brief(plan(target, moved, report([vmFact("a", "incoming", { incoming: { port: 49152, done: true } })], { exports: ["a"] }), { self: "node2" })), ["a cont"]);
  assert.equal(brief(plan(target, moved, report([vmFact("a", "running")], { exports: ["a"] }), { self: "node2" })), ["a unexport"]);
});

Mig("no migration without the replica in sync on the target; an abandoned one resumes the source", () => {
  const l = new VmLocal("node1");
  const syncing = cfg({ "vm:a": "node1" }, { "vm-replica:a": "node2", "vm-mig:a": "node2" });
  const incoming = report([vmFact("a", "incoming", { incoming: { port: 49152, done: false } })], { exports: ["a"] });
  assert.equal(plan(l, syncing, report([vmFact("a", "running", { mirror: { to: "node2", state: "syncing", done: 0.4 } })]), { peers: { node2: incoming } }), []);
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }), report([vmFact("a", "migrated")]))), ["a cont"]);
});

Mig("a target whose migration was called off, or whose source was fenced mid-way, kills its waiting QEMU", () => {
  const l = new VmLocal("node2");
  assert.equal(brief(plan(l, cfg({ "vm:a": "node1" }), report([vmFact("a", "incoming", { incoming: { port: 1, done: false } })]), { self: "node2" })), ["a kill"]);
  assert.equal(brief(plan(l, cfg({ "vm:a": "node2" }), report([vmFact("a", "incoming", { incoming: { port: 1, done: false } })]), { self: "node2" })), ["a kill"]);
});

Mig("committed while the target's facts were read before the stream's end: it waits while its live source reports it migrated", () => {
  // found in the lab: the target killed the guest the migration had just moved, and booted it afresh
  const l = new VmLocal("node2");
  const moved = cfg({ "vm:a": "node2" });
  const stale = report([vmFact("a", "incoming", { incoming: { port: 1, done: false } })], { exports: ["a"] });
  const source = { node1: report([vmFact("a", "migrated")]) };
  assert.equal(plan(l, moved, stale, { self: "node2", peers: source }), [], "waits for its facts to say done");
  assert.equal(brief(plan(l, moved, stale, { self: "node2", peers: source, dead: ["node1"] })), ["a kill"], "a lost source: a fresh start");
  assert.equal(brief(plan(l, moved, stale, { self: "node2", peers: { node1: report([vmFact("a", "running")]) } })), ["a kill"], "a source that still runs it did not send it all");
  // the source, for its part, quits its migrated QEMU only once the new holder reports it running
  const src = new VmLocal("node1");
  assert.equal(plan(src, moved, report([vmFact("a", "migrated")]), { peers: { node2: stale } }), [], "the target has not continued it yet");
  assert.equal(brief(plan(src, moved, report([vmFact("a", "migrated")]), { peers: { node2: report([vmFact("a", "running")]) } })), ["a quit"]);
  assert.equal(brief(plan(src, moved, report([vmFact("a", "migrated")]), { peers: { node2: stale }, dead: ["node2"] })), ["a quit"], "a lost target: nothing to wait for");
});

Mig.run();
