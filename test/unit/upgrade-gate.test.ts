// The rolling upgrade's pure decisions (agent/upgrade/gate.ts): the order and the refusals of
// a rollout, a replica "in sync", and the health gate stepped with facts on a given clock.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { DbReport } from "../../agent/bus/messages.ts";
import { Gate, baselineIds, contained, gtidKind, inSync, planRollout, type GateInput, type NodeFacts } from "../../agent/upgrade/gate.ts";

const SHA = "a".repeat(64);
const OLD = "b".repeat(64);
const node = (n: string, over: Partial<NodeFacts> = {}): NodeFacts => ({
  node: n, heard: true, version: "0.1.0", bundle: OLD, quorum: true, leader: "node2", upgrade: { step: "idle" }, ...over,
});
const MEMBERS = ["node1", "node2", "node3"];

const P = suite("planRollout: which nodes, in which order, or why not");

P("every node not on the bundle, by name, the leader's node last", () => {
  const p = planRollout(SHA, MEMBERS, "node2", MEMBERS.map((n) => node(n)));
  assert.equal(p, { order: ["node1", "node3", "node2"], skip: [], refuse: null });
});

P("nodes already on the bundle are skipped (a rollout run again goes on where it stopped)", () => {
  const p = planRollout(SHA, MEMBERS, "node1", [node("node1"), node("node2", { bundle: SHA }), node("node3")]);
  assert.equal(p.order, ["node3", "node1"]);
  assert.equal(p.skip, ["node2"]);
  assert.is(p.refuse, null);
});

P("refused: no leader, a member not heard, an agent without upgrade support, a trial running, no quorum", () => {
  const all = () => MEMBERS.map((n) => node(n));
  assert.match(planRollout(SHA, MEMBERS, null, all()).refuse ?? "", /no leader/);
  assert.match(planRollout(SHA, MEMBERS, "node2", [node("node1"), node("node2")]).refuse ?? "", /node3 is not heard/);
  assert.match(planRollout(SHA, MEMBERS, "node2", [node("node1", { heard: false }), node("node2"), node("node3")]).refuse ?? "", /node1 is not heard/);
  const old = node("node3", { version: "0.0.9" });
  delete old.upgrade;
  assert.match(planRollout(SHA, MEMBERS, "node2", [node("node1"), node("node2"), old]).refuse ?? "", /node3 runs 0\.0\.9 without rolling upgrade support/);
  assert.match(planRollout(SHA, MEMBERS, "node2", [node("node1", { upgrade: { step: "trial", version: "0.2.0" } }), node("node2"), node("node3")]).refuse ?? "", /node1 has a bundle on trial \(0\.2\.0\)/);
  assert.match(planRollout(SHA, MEMBERS, "node2", [node("node1"), node("node2"), node("node3", { quorum: false })]).refuse ?? "", /node3 has no quorum/);
});

P.run();

const S = suite("in sync: a replica of the holder that has applied what the holder had earlier");
const MARIA = "0-1-100";
const rep = (over: Partial<DbReport> = {}): DbReport => ({
  up: true, role: "replica", writable: false, received: MARIA, applied: MARIA, source: "node2", heldOut: null, recvAgoMs: 100, ...over,
});

S("positions: MariaDB and MySQL GTID sets, Redis offsets", () => {
  assert.is(gtidKind("0-1-5"), "mariadb");
  assert.is(gtidKind("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"), "mysql");
  assert.is(contained("mysql", "0-1-99", "0-1-100"), true);
  assert.is(contained("mysql", "0-1-101", "0-1-100"), false);
  assert.is(contained("mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9"), true);
  assert.is(contained("redis", "1000", "999"), false);
  assert.is(contained("redis", "999", "1000"), true);
  assert.is(contained("redis", "x", "1000"), null);
});

S("each condition in turn", () => {
  assert.is(inSync("mysql", null, "node2", MARIA, 3000), null, "no MySQL on the node: nothing to check");
  assert.is(inSync("mysql", rep(), "node2", "0-1-90", 3000), null);
  assert.is(inSync("mysql", rep({ up: false }), "node2", MARIA, 3000), "its mysql is down");
  assert.match(inSync("mysql", rep({ heldOut: "extra transactions 0-3-4" }), "node2", MARIA, 3000) ?? "", /holds itself out: extra/);
  assert.is(inSync("mysql", rep({ source: "node3" }), "node2", MARIA, 3000), "its mysql is replica of node3, not a replica of node2");
  assert.is(inSync("mysql", rep({ role: "primary", source: null }), "node2", MARIA, 3000), "its mysql is primary, not a replica of node2");
  assert.is(inSync("mysql", rep({ recvAgoMs: null }), "node2", MARIA, 3000), "its mysql has not heard from node2 for ever");
  assert.is(inSync("mysql", rep({ recvAgoMs: 4000 }), "node2", MARIA, 3000), "its mysql has not heard from node2 for 4000 ms");
  assert.is(inSync("mysql", rep(), "node2", null, 3000), "its mysql lag is not measured yet");
  assert.is(inSync("mysql", rep({ applied: "0-1-90" }), "node2", "0-1-95", 3000), "its mysql lags behind node2");
  assert.is(inSync("redis", rep({ applied: "500", received: "500", recvAgoMs: undefined }), "node2", "400", 3000), null, "Redis reports no recvAgoMs");
});

S.run();

const G = suite("the health gate: every condition held for `settle`, within the deadline");
const input = (now: number, over: Partial<GateInput> = {}): GateInput => ({
  now, target: node("node1", { bundle: SHA }), sha: SHA, holders: { mysql: "node2", redis: "node2" },
  replicas: { mysql: rep(), redis: rep({ received: "500", applied: "500" }) }, holderPos: { mysql: MARIA, redis: "500" },
  alarms: [], baseline: new Set(), ...over,
});
const gate = () => new Gate({ deadline: 60_000, settleMs: 3000, maxRecvAgoMs: 3000, maxLagMs: 2000 });

G("passes once everything has held for settle; the lag is measured against the holder 2 s before", () => {
  const g = gate();
  assert.equal(g.step(input(0)), { verdict: "wait", unmet: ["node1: its mysql lag is not measured yet", "node1: its redis lag is not measured yet"] });
  assert.equal(g.step(input(1000)).verdict, "wait");
  assert.equal(g.step(input(2000)), { verdict: "wait", unmet: ["settling (0 of 3000 ms)"] });
  assert.equal(g.step(input(4000)), { verdict: "wait", unmet: ["settling (2000 of 3000 ms)"] });
  assert.equal(g.step(input(5000)), { verdict: "pass", why: "held for 3000 ms" });
});

G("a replica that falls behind its holder's position of 2 s before resets the settle time", () => {
  const g = gate();
  g.step(input(0, { holderPos: { mysql: "0-1-100", redis: "500" } }));
  g.step(input(2000, { holderPos: { mysql: "0-1-120", redis: "500" } }));
  assert.equal(g.step(input(3000, { holderPos: { mysql: "0-1-130", redis: "500" } })).verdict, "wait");
  const v = g.step(input(4500, { replicas: { mysql: rep({ applied: "0-1-110" }), redis: rep({ applied: "500" }) }, holderPos: { mysql: "0-1-140", redis: "500" } }));
  assert.equal(v, { verdict: "wait", unmet: ["node1: its mysql lags behind node2"] }, "0-1-110 lacks 0-1-120, the position at 2000");
  assert.equal(g.step(input(5000, { replicas: { mysql: rep({ applied: "0-1-140" }), redis: rep({ applied: "500" }) }, holderPos: { mysql: "0-1-150", redis: "500" } })), { verdict: "wait", unmet: ["settling (0 of 3000 ms)"] });
});

G("the node must run the new bundle with quorum and a leader; a new alarm (not info, not in the baseline) holds it", () => {
  const g = gate();
  g.step(input(0));
  assert.equal(g.step(input(2000, { target: node("node1") })).verdict, "wait");
  assert.equal(g.step(input(2000, { target: node("node1") })), { verdict: "wait", unmet: [`node1 runs bundle ${OLD.slice(0, 12)}, not ${SHA.slice(0, 12)}`] });
  assert.equal(g.step(input(2100, { target: node("node1", { bundle: SHA, heard: false }) })), { verdict: "wait", unmet: ["node1 is not heard"] });
  assert.equal(g.step(input(2200, { target: node("node1", { bundle: SHA, quorum: false }) })), { verdict: "wait", unmet: ["node1 has no quorum"] });
  const alarms = [{ id: "old", severity: "major", text: "was there before" }, { id: "note", severity: "info", text: "fyi" }, { id: "node-lost:node1", severity: "major", text: "node1 lost" }];
  assert.equal(g.step(input(2300, { alarms, baseline: new Set(["old"]) })), { verdict: "wait", unmet: ["new alarm: node-lost:node1 (node1 lost)"] });
});

G("the deadline: fails with what is still unmet; without facts, with the last unmet or why there are none", () => {
  const g = gate();
  g.step(input(0, { target: node("node1", { heard: false }) }));
  assert.equal(g.noFacts(30_000, "the local agent does not answer"), { verdict: "wait", unmet: ["the local agent does not answer"] });
  assert.equal(g.step(input(60_000, { target: node("node1", { heard: false }) })).verdict, "fail");
  assert.match((g.noFacts(60_001, "x") as { why: string }).why, /not healthy by the deadline: node1 is not heard/);
});

G("a trial the node rolled back itself fails the gate at once, saying why", () => {
  const v = gate().step(input(0, { target: node("node1", { upgrade: { step: "rolled-back", sha: SHA, why: "the deadline passed" } }) }));
  assert.equal(v, { verdict: "fail", why: "node1 rolled its trial back: the deadline passed" });
});

G("the baseline counts alarms pending (raise_after) as already there: a lone node's not-ready raised during the upgrade is not new", () => {
  const body = { status: "ok", active: [{ id: "port-down:switchA:swp1" }], pending: [{ id: "not-ready:node1" }, { id: "port-down:switchA:swp1" }] };
  const baseline = new Set(baselineIds(body));
  assert.equal([...baseline], ["port-down:switchA:swp1", "not-ready:node1"]);
  assert.equal(baselineIds(null), []);
  assert.equal(baselineIds({ active: [{ id: "a" }] }), ["a"], "an older agent's body (no pending)");
  const alarms = [{ id: "not-ready:node1", severity: "major", text: "losing node1 would stop the cluster" }];
  const g = gate();
  for (const t of [0, 1000, 2000]) g.step(input(t, { alarms, baseline }));
  assert.equal(g.step(input(5000, { alarms, baseline })), { verdict: "pass", why: "held for 3000 ms" });
  const g2 = gate();
  for (const t of [0, 1000]) g2.step(input(t, { alarms, baseline: new Set() }));
  assert.equal(g2.step(input(2000, { alarms, baseline: new Set() })), { verdict: "wait", unmet: ["new alarm: not-ready:node1 (losing node1 would stop the cluster)"] }, "not in the baseline: new");
});

G.run();
