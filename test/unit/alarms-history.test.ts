// Alarm history on disk (JSON lines, rotated), MQTT payloads and the cluster-wide merge.
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AlarmHistory, CLEAR_PAYLOAD, alarmPayload, lastActive, mergeAlarms, occurrences, parseAlarmPayload } from "../../agent/alarms/history.ts";
import type { Alarm, Transition } from "../../agent/alarms/types.ts";

const alarm = (p: Partial<Alarm> = {}): Alarm => ({
  id: "node-lost:node2",
  rule: "node-lost",
  severity: "major",
  node: "node2",
  reporter: "node1",
  text: "node2 lost",
  detail: "no heartbeat seen by node1",
  state: "raised",
  occurrence: 1,
  raisedAt: 1000,
  updatedAt: 1000,
  ackedBy: null,
  ackedAt: null,
  clearedAt: null,
  flaps: 0,
  flapping: false,
  until: null,
  ...p,
});
const tr = (kind: Transition["kind"], a: Alarm, at = a.updatedAt): Transition => ({ kind, at, alarm: a });

const H = suite("AlarmHistory");
let dir = "";
H.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-alarms-"));
});
H.after.each(() => rmSync(dir, { recursive: true, force: true }));

H("appends, reads back oldest first, folds to occurrences and the active set", () => {
  const h = new AlarmHistory(join(dir, "alarms"), { maxBytes: 1 << 20, keep: 3 });
  const a = alarm();
  assert.equal(h.append([tr("raised", a), tr("acked", { ...a, state: "acknowledged", ackedBy: "ops", ackedAt: 2000, updatedAt: 2000 })]), { ok: true, value: 2 });
  h.append([tr("raised", alarm({ id: "fan:node1:FAN1", rule: "fan", node: "node1", text: "node1 FAN1 stopped", raisedAt: 1500, updatedAt: 1500 }))]);
  h.append([tr("cleared", { ...a, state: "cleared", clearedAt: 3000, updatedAt: 3000 })]);
  h.append([tr("raised", alarm({ occurrence: 2, raisedAt: 4000, updatedAt: 4000 }))]);
  const r = h.read();
  assert.is(r.records.length, 5);
  assert.equal(r.records.map((x) => x.kind), ["raised", "acked", "raised", "cleared", "raised"]);
  assert.equal(occurrences(r.records).map((x) => [x.id, x.occurrence, x.state]), [
    ["node-lost:node2", 2, "raised"],
    ["node-lost:node2", 1, "cleared"],
    ["fan:node1:FAN1", 1, "raised"],
  ]);
  assert.equal(lastActive(r.records).map((x) => [x.id, x.occurrence]), [["fan:node1:FAN1", 1], ["node-lost:node2", 2]]);
  assert.equal(lastActive(r.records, "node9"), []);
  assert.equal(h.read(2).records.length, 2);
});

H("rotates by size and keeps N files; a torn line is skipped and counted", () => {
  const h = new AlarmHistory(dir, { maxBytes: 2000, keep: 3, fsync: false });
  for (let i = 0; i < 40; i++) h.append([tr("raised", alarm({ id: `fan:node1:FAN${i}`, raisedAt: i, updatedAt: i }))]);
  assert.equal(readdirSync(dir).sort(), ["history.1.jsonl", "history.2.jsonl", "history.jsonl"]);
  const r = h.read();
  assert.ok(r.records.length < 40 && r.records.length > 10, String(r.records.length));
  assert.is(r.records.at(-1)!.alarm.id, "fan:node1:FAN39");
  const ids = r.records.map((x) => Number(x.alarm.id.slice(12)));
  assert.equal(ids, [...ids].sort((a, b) => a - b), "oldest first across files");
  appendFileSync(h.file(0), '{"v":1,"at":5,"kind":"rai');
  assert.is(h.read().bad, 1);
});

H("an unwritable directory is an error value, not a throw", () => {
  appendFileSync(join(dir, "a-file"), "x");
  const h = new AlarmHistory(join(dir, "a-file", "alarms"), { maxBytes: 4096, keep: 2 });
  const r = h.append([tr("raised", alarm())]);
  assert.ok(!r.ok && r.error.includes("cannot write the alarm history"));
});

const P = suite("alarm payloads and merge");

P("payload round trip; empty is a clear; the wrong sender, id or version is an error", () => {
  const a = alarm();
  assert.equal(parseAlarmPayload(alarmPayload(a), "node1", a.id), { ok: true, value: a });
  assert.equal(parseAlarmPayload(Buffer.from(alarmPayload(a)), "node1", a.id), { ok: true, value: a });
  assert.equal(parseAlarmPayload(CLEAR_PAYLOAD, "node1", a.id), { ok: true, value: null });
  const bad = (p: string, sender = "node1", id = a.id) => {
    const r = parseAlarmPayload(p, sender, id);
    return r.ok ? "ok" : r.error;
  };
  assert.match(bad(alarmPayload(a), "node3"), "body reporter is node1");
  assert.match(bad(alarmPayload(a), "node1", "x:y"), "body id is node-lost:node2");
  assert.match(bad("{nope"), "not JSON");
  assert.match(bad(JSON.stringify({ ...a, v: 2 })), "expected payload version 1");
  assert.match(bad(JSON.stringify({ ...a, v: 1, severity: "fatal" })), "severity");
});

P("merge: one row per id, worst severity, earliest raise, all reporters, acked if any", () => {
  const m = mergeAlarms([
    alarm({ reporter: "node3", severity: "major", raisedAt: 900, ackedBy: "ops", ackedAt: 1200, state: "acknowledged" }),
    alarm(),
    alarm({ id: "quorum-lost:node1", rule: "quorum-lost", severity: "critical", node: "node1", text: "node1 lost quorum", raisedAt: 5000 }),
    alarm({ id: "gone:x", rule: "sel", state: "cleared" }),
  ]);
  assert.equal(m.map((x) => [x.id, x.severity, x.reporters, x.raisedAt, x.state, x.ackedBy]), [
    ["quorum-lost:node1", "critical", ["node1"], 5000, "raised", null],
    ["node-lost:node2", "major", ["node1", "node3"], 900, "acknowledged", "ops"],
  ]);
});

H.run();
P.run();
