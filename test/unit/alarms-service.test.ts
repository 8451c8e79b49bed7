// AlarmService: readings -> transitions -> history, retained MQTT payloads, notifications;
// and a restart that takes its active alarms back without raising them again.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { AlarmHistory, parseAlarmPayload } from "../../agent/alarms/history.ts";
import { AlarmService } from "../../agent/alarms/service.ts";
import type { Readings, Transition } from "../../agent/alarms/types.ts";
import type { Logger } from "../../agent/env/env.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const R = (up: boolean): Readings => ({
  node: "node1",
  switches: [{ switch: "switchB", reachable: true, ports: [{ port: "swp1", node: "node1", nic: "eth1", oper: up ? "up" : "down", admin: "up" }] }],
});

const S = suite("AlarmService");
let dir = "";
S.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-alarm-svc-"));
});
S.after.each(() => rmSync(dir, { recursive: true, force: true }));

function service() {
  const cfg = defaultAlarmsConfig();
  const published: [string, string][] = [];
  const notified: Transition[] = [];
  const svc = new AlarmService(cfg, "node1", new AlarmHistory(dir, { ...cfg.history, fsync: false }), { publish: (id, p) => void published.push([id, p]), notify: (ts) => void notified.push(...ts) }, quiet);
  return { svc, published, notified };
}

S("a fault: history, a retained payload, a notification; the clear empties the topic", () => {
  const { svc, published, notified } = service();
  svc.start();
  svc.step(1000, R(false));
  svc.step(2000, R(false));
  assert.equal(published.map(([id]) => id), ["port-down:switchB:swp1"]);
  const p = parseAlarmPayload(published[0]![1], "node1", "port-down:switchB:swp1");
  assert.ok(p.ok && p.value?.text === "switchB port swp1 to node1 eth1 down");
  assert.equal(svc.counts(), { critical: 0, major: 1, minor: 0, info: 0 });
  assert.ok(svc.ack("port-down:switchB:swp1", "ops", 3000).ok);
  svc.step(4000, R(true));
  svc.step(14_000, R(true));
  assert.equal(published.map(([, pl]) => (pl === "" ? "clear" : JSON.parse(pl).state)), ["raised", "acknowledged", "clear"]);
  assert.equal(notified.map((t) => t.kind), ["raised", "acked", "cleared"]);
  assert.equal(svc.history.read().records.map((r) => r.kind), ["raised", "acked", "cleared"]);
});

S("a restart takes back what was active: republished, not raised or notified again", () => {
  const a = service();
  a.svc.start();
  a.svc.step(1000, R(false));
  const b = service();
  b.svc.start();
  assert.equal(b.published.map(([id]) => id), ["port-down:switchB:swp1"]);
  b.svc.step(5000, R(false));
  assert.equal(b.notified, []);
  assert.equal(b.svc.staleRetained(["port-down:switchB:swp1", "fan:node1:FAN9"]), ["fan:node1:FAN9"]);
  b.svc.step(6000, R(true));
  b.svc.step(16_000, R(true));
  assert.equal(b.notified.map((t) => [t.kind, t.alarm.raisedAt]), [["cleared", 1000]]);
});

S.run();
