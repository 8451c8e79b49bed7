// AlarmEngine: de-duplication, damping, lifecycle. Time is a plain number (ms).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig, type DampingConfig } from "../../agent/alarms/config.ts";
import { AlarmEngine } from "../../agent/alarms/engine.ts";
import type { Condition, Evaluation, Severity, Transition } from "../../agent/alarms/types.ts";

const ID = "port-down:switchB:swp1";
const cond = (severity: Severity = "major", extra: Partial<Condition> = {}): Condition => ({
  id: ID,
  scope: ID,
  rule: "port-down",
  severity,
  node: "node1",
  text: "switchB port swp1 to node1 down",
  detail: "ifOperStatus down",
  ...extra,
});
const yes = (c: Condition = cond()): Evaluation => ({ conditions: [c], scopes: [c.scope], resolved: [] });
const no = (scope = ID): Evaluation => ({ conditions: [], scopes: [scope], resolved: [] });
const unknown: Evaluation = { conditions: [], scopes: [], resolved: [] };
const damping = (d: Partial<DampingConfig> = {}): DampingConfig => ({ ...defaultAlarmsConfig().damping, ...d });
const kinds = (ts: Transition[]) => ts.map((t) => t.kind);

const E = suite("AlarmEngine");

E("a steady fault raises once and clears once, clear_after after it is gone", () => {
  const e = new AlarmEngine("node1", damping({ clearAfterMs: 10_000 }));
  const all: Transition[] = [];
  for (let t = 0; t < 60_000; t += 1000) all.push(...e.step(t, yes()).transitions);
  assert.equal(kinds(all), ["raised"]);
  assert.is(all[0]!.alarm.raisedAt, 0);
  assert.is(e.active().length, 1);
  const after: Transition[] = [];
  for (let t = 60_000; t < 120_000; t += 1000) after.push(...e.step(t, no()).transitions);
  assert.equal(kinds(after), ["cleared"]);
  assert.is(after[0]!.at, 70_000);
  assert.is(after[0]!.alarm.state, "cleared");
  assert.equal(e.active(), []);
});

E("raise_after: a condition shorter than it raises nothing", () => {
  const e = new AlarmEngine("node1", damping({ raiseAfterMs: 3000, perRule: { "port-down": { raiseAfterMs: 2000 } } }));
  assert.equal(kinds(e.step(0, yes()).transitions), []);
  assert.equal(kinds(e.step(1000, yes()).transitions), []);
  assert.equal(kinds(e.step(1500, no()).transitions), []);
  assert.equal(kinds(e.step(2500, yes()).transitions), []);
  assert.equal(kinds(e.step(4500, yes()).transitions), ["raised"]); // per-rule 2000 ms
});

E("pending: a condition waiting out raise_after is listed until it is raised or goes", () => {
  const e = new AlarmEngine("node1", damping({ raiseAfterMs: 3000, perRule: {} }));
  assert.equal(e.pending(0), []);
  e.step(0, yes());
  e.step(1000, yes());
  assert.equal(e.pending(1200), [{ id: ID, severity: "major", text: "switchB port swp1 to node1 down", forMs: 1200 }]);
  e.step(1500, no());
  assert.equal(e.pending(1500), [], "gone before raise_after: not pending");
  e.step(2000, yes());
  e.step(5000, yes());
  assert.equal(e.active().map((a) => a.id), [ID]);
  assert.equal(e.pending(5000), [], "raised: active, not pending");
});

E("a flapping condition is raised once, marked flapping once, and cleared once it settles", () => {
  const e = new AlarmEngine("node1", damping({ clearAfterMs: 5000, maxClearAfterMs: 60_000, flappingAfter: 3 }));
  const all: Transition[] = [];
  for (let t = 0; t < 300_000; t += 1000) all.push(...e.step(t, Math.floor(t / 3000) % 2 === 0 ? yes() : no()).transitions);
  assert.equal(kinds(all), ["raised", "updated"]);
  assert.ok(all[1]!.alarm.flapping);
  for (let t = 300_000; t < 400_000; t += 1000) all.push(...e.step(t, no()).transitions);
  assert.equal(kinds(all), ["raised", "updated", "cleared"]);
  assert.ok(all[2]!.at - 300_000 <= 61_000, "hold capped at max_clear_after_ms");
});

E("each flap doubles the clear hold, up to max_clear_after_ms", () => {
  const e = new AlarmEngine("node1", damping({ clearAfterMs: 1000, maxClearAfterMs: 8000, flappingAfter: 100 }));
  e.step(0, yes());
  e.step(100, no());
  e.step(200, yes()); // flap 1: hold 2000
  e.step(300, no());
  e.step(400, yes()); // flap 2: hold 4000
  e.step(1000, no());
  assert.equal(kinds(e.step(4900, no()).transitions), []);
  assert.equal(kinds(e.step(5000, no()).transitions), ["cleared"]);
});

E("an unjudged subject neither raises nor clears", () => {
  const e = new AlarmEngine("node1", damping({ clearAfterMs: 1000 }));
  e.step(0, yes());
  for (let t = 1000; t < 100_000; t += 1000) assert.equal(e.step(t, unknown).transitions, []);
  assert.is(e.active().length, 1);
  e.step(100_000, no());
  assert.equal(kinds(e.step(101_000, no()).transitions), ["cleared"]);
});

E("severity and text changes are updates; new measured values only refresh detail", () => {
  const e = new AlarmEngine("node1", damping());
  e.step(0, yes(cond("minor", { detail: "86 %" })));
  assert.equal(e.step(1000, yes(cond("minor", { detail: "87 %" }))).transitions, []);
  assert.is(e.get(ID)!.detail, "87 %");
  const up = e.step(2000, yes(cond("major", { detail: "96 %" }))).transitions;
  assert.equal(kinds(up), ["updated"]);
  assert.is(up[0]!.alarm.severity, "major");
  assert.is(up[0]!.alarm.occurrence, 1);
});

E("a severity hovering at a threshold: escalated at once, lowered only once it held", () => {
  const e = new AlarmEngine("node1", damping({ clearAfterMs: 5000 }));
  const all: Transition[] = [];
  for (let t = 0; t < 60_000; t += 1000) all.push(...e.step(t, yes(cond(t % 2000 === 0 ? "major" : "minor"))).transitions);
  assert.equal(all.map((x) => `${x.kind} ${x.alarm.severity}`), ["raised major"]);
  for (let t = 60_000; t < 70_000; t += 1000) all.push(...e.step(t, yes(cond("minor"))).transitions);
  assert.equal(all.map((x) => `${x.at} ${x.kind} ${x.alarm.severity}`), ["0 raised major", "64000 updated minor"]);
  all.push(...e.step(70_000, yes(cond("critical"))).transitions);
  assert.equal(all.at(-1)!.alarm.severity, "critical");
});

E("de-duplication: the same id twice in one step is one alarm, at the worse severity", () => {
  const e = new AlarmEngine("node1", damping());
  const r = e.step(0, { conditions: [cond("minor"), cond("major")], scopes: [ID], resolved: [] });
  assert.equal(kinds(r.transitions), ["raised"]);
  assert.is(r.active[0]!.severity, "major");
});

E("lifecycle: raised, acknowledged (who, when), cleared; a re-raise is a new occurrence", () => {
  const e = new AlarmEngine("node1", damping({ clearAfterMs: 0, flapWindowMs: 1000 }));
  e.step(0, yes());
  const a = e.ack(ID, "ops@node1", 500);
  assert.ok(a.ok && a.transition?.kind === "acked");
  assert.equal(a.ok && [a.alarm.state, a.alarm.ackedBy, a.alarm.ackedAt], ["acknowledged", "ops@node1", 500]);
  const again = e.ack(ID, "someone-else", 600);
  assert.ok(again.ok && again.transition === null && again.alarm.ackedBy === "ops@node1");
  assert.is(e.step(1000, yes()).active[0]!.state, "acknowledged");
  const c = e.step(2000, no()).transitions;
  assert.equal([c[0]!.kind, c[0]!.alarm.clearedAt, c[0]!.alarm.ackedBy], ["cleared", 2000, "ops@node1"]);
  const r = e.step(10_000, yes()).transitions[0]!;
  assert.equal([r.kind, r.alarm.occurrence, r.alarm.state, r.alarm.ackedBy, r.alarm.flaps], ["raised", 2, "raised", null, 0]);
  const missing = e.ack("nope", "x", 0);
  assert.ok(!missing.ok && /no active alarm "nope" on node1/.test(missing.error));
});

E("events: failover done holds for its time; fence failed holds until acknowledged or settled", () => {
  const e = new AlarmEngine("node1", damping());
  const fo: Condition = { id: "failover-done:mysql", scope: "failover-done:mysql", rule: "failover-done", severity: "info", node: "node2", text: "mysql failed over from node1 to node2", hold: 60_000 };
  assert.equal(kinds(e.step(0, { conditions: [fo], scopes: [], resolved: [] }).transitions), ["raised"]);
  assert.equal(e.step(59_000, unknown).transitions, []);
  assert.equal(kinds(e.step(60_000, unknown).transitions), ["cleared"]);
  const ff: Condition = { id: "fence-failed:node2", scope: "fence-failed:node2", rule: "fence-failed", severity: "critical", node: "node2", text: "fencing node2 failed", hold: "ack" };
  e.step(0, { conditions: [ff], scopes: [], resolved: [] });
  assert.equal(e.step(1e9, unknown).transitions, []);
  e.ack(ff.id, "ops", 1e9);
  assert.equal(kinds(e.step(1e9 + 1, unknown).transitions), ["cleared"]);
  e.step(2e9, { conditions: [ff], scopes: [], resolved: [] });
  assert.equal(kinds(e.step(2e9 + 1, { conditions: [], scopes: [], resolved: [ff.id] }).transitions), ["cleared"]);
});

E("a condition that breaks off before raise_after, again and again, is raised as flapping", () => {
  const e = new AlarmEngine("node1", damping({ raiseAfterMs: 5000, flappingAfter: 3 }));
  const all: Transition[] = [];
  for (let t = 0; t < 20_000; t += 1000) all.push(...e.step(t, t % 2000 === 0 ? yes() : no()).transitions);
  assert.equal(kinds(all), ["raised"]);
  assert.ok(all[0]!.alarm.flapping);
  assert.is(all[0]!.at, 6000);
});

E("restore: a restored alarm is not raised again and clears as usual", () => {
  const e1 = new AlarmEngine("node1", damping({ clearAfterMs: 1000 }));
  const active = e1.step(0, yes()).active;
  const e2 = new AlarmEngine("node1", damping({ clearAfterMs: 1000 }));
  assert.is(e2.restore([...active, { ...active[0]!, id: "x:other", reporter: "node2" }]), 1);
  assert.equal(e2.step(5000, yes()).transitions, []);
  e2.step(6000, no());
  const c = e2.step(7000, no()).transitions;
  assert.equal([c[0]!.kind, c[0]!.alarm.raisedAt], ["cleared", 0]);
});

E.run();
