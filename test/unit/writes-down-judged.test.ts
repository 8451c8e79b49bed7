// "Writes are down" is judged once per alarm step (hw.pollMs): an outage long enough for the
// alarm (ha.writes_down_alarm_ms) that ends between two steps must still reach the alarm once
// (agent/ha/manager.ts judgedWritesDown), as a VM mirror rebuilt between two steps does.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterConfig, ResReport } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { DEFAULT_HA_TIMING, HaManager, type Report } from "../../agent/ha/manager.ts";

const NODES = ["node1", "node2", "node3"];
const c: ClusterConfig = { epoch: 5, term: 2, members: NODES.map((name) => ({ name, bus: `${name}:1883` })), assignments: { mysql: "node1", vip: "node1" }, flags: { "inst:mysql": "x" } };
const view: NodeView = {
  node: "node1", role: "leader", term: 2, leader: "node1", quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true,
  config: c, committed: c, counters: {},
  peers: NODES.filter((n) => n !== "node1").map((name) => ({ name, alive: true, lastHeardMs: 100, term: 2, role: "follower" as const, leader: "node1", skewMs: 0 })),
};
const report = (n: string, writable: boolean): Report => ({
  at: 0, r: { v: 1, t: "res", mysql: { up: true, role: n === "node1" ? "primary" : "replica", writable: n === "node1" && writable, received: "0-1-5", applied: "0-1-5", source: null, heldOut: null, inst: "x" }, redis: null, portal: { mysql: "node1", redis: null }, vip: n === "node1", selfFenced: false },
});
const tick = (m: HaManager, now: number, writable: boolean) =>
  m.tick({ now, wall: Date.UTC(2026, 11, 6, 14, 0, 0) + now, view, reports: new Map(NODES.map((n) => [n, report(n, writable)])), cmp: () => 0 });

const W = suite("writes-down: judged once per alarm step");
W("an outage over the alarm's threshold that ended between two judgements is judged once, with when it ended", () => {
  const m = new HaManager("node1", DEFAULT_HA_TIMING, { event: () => undefined });
  tick(m, 1000, true);
  assert.equal(m.judgedWritesDown(), [], "writable");
  tick(m, 2000, false);
  tick(m, 2000 + DEFAULT_HA_TIMING.writesDownAlarmMs + 300, false);
  tick(m, 2000 + DEFAULT_HA_TIMING.writesDownAlarmMs + 600, true);
  assert.equal(m.writesDown(), [], "writable again: nothing now");
  const j = m.judgedWritesDown();
  assert.is(j.length, 1);
  assert.is(j[0]!.svc, "mysql");
  assert.is(j[0]!.forMs, DEFAULT_HA_TIMING.writesDownAlarmMs + 600);
  assert.match(j[0]!.why, /writable again at 14:00:07.600 UTC/);
  assert.equal(m.judgedWritesDown(), [], "handed over once");
});
W("an outage shorter than the threshold is never judged", () => {
  const m = new HaManager("node1", DEFAULT_HA_TIMING, { event: () => undefined });
  tick(m, 1000, false);
  tick(m, 1000 + DEFAULT_HA_TIMING.writesDownAlarmMs - 1, true);
  assert.equal(m.judgedWritesDown(), []);
});
W.run();
