// Alarms over real Mosquitto brokers (DESIGN §3): a node's alarm is retained under its own
// prefix and reaches every node, an empty retained payload clears it, a receiver that
// registers late gets what is held, a restarted broker (which lost its retained messages)
// gets them again from its node, and a malformed alarm is counted and dropped.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { alarmPayload } from "../../agent/alarms/history.ts";
import type { Alarm } from "../../agent/alarms/types.ts";
import { MqttBus } from "../../agent/bus/mqtt.ts";
import type { Logger } from "../../agent/env/env.ts";
import { startBrokers, type BrokerHarness } from "./harness.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const alarm = (node: string, id: string, text: string): Alarm => ({
  id, rule: "psu", severity: "major", node, reporter: node, text, detail: null, state: "raised", occurrence: 1,
  raisedAt: Date.now(), updatedAt: Date.now(), ackedBy: null, ackedAt: null, clearedAt: null, flaps: 0, flapping: false, until: null,
});

interface Ctx {
  h: BrokerHarness;
  buses: Map<string, MqttBus>;
}
const s = suite<Ctx>("alarms on the bus");

function bus(ctx: Ctx, node: string): MqttBus {
  const b = new MqttBus({ cluster: ctx.h.cluster, node, ...ctx.h.credentials(node), brokers: ctx.h.members(), log: quiet, now: () => performance.now(), reconnectMaxMs: 200 });
  ctx.buses.set(node, b);
  b.start();
  return b;
}

/** node -> id -> text, as one bus's onAlarm receiver holds them */
function holder(b: MqttBus) {
  const held = new Map<string, Map<string, string>>();
  const stamps: { at: number; from: string; id: string | null; set: boolean }[] = [];
  b.onAlarm((from, id, a) => {
    stamps.push({ at: performance.now(), from, id, set: !!a });
    if (id === null) return void held.delete(from);
    if (!held.has(from)) held.set(from, new Map());
    if (a) held.get(from)!.set(id, a.text);
    else held.get(from)!.delete(id);
  });
  return { held, stamps, texts: (from: string) => [...(held.get(from)?.values() ?? [])].sort() };
}

async function until(what: string, ms: number, f: () => boolean): Promise<number> {
  const t0 = performance.now();
  while (!f()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - t0;
}
const connected = (b: MqttBus) => b.stats().brokers.length === 3 && b.stats().brokers.every((x) => x.connected);

s.before(async (ctx) => {
  ctx.h = await startBrokers({ nodes: 3, cluster: "al" });
  ctx.buses = new Map();
});
s.after(async (ctx) => {
  for (const b of ctx.buses.values()) await b.stop();
  await ctx.h.stop();
});

s("retained at the sender's prefix, seen by every node; a clear removes it everywhere", async (ctx) => {
  const [b1, b2, b3] = [bus(ctx, "node1"), bus(ctx, "node2"), bus(ctx, "node3")];
  const [h2, h3] = [holder(b2), holder(b3)];
  await until("all connected", 5000, () => [b1, b2, b3].every(connected));
  const a = alarm("node1", "psu:node1:PSU2", "node1 PSU2 failed");
  const t0 = performance.now();
  b1.publishAlarm(a.id, alarmPayload(a));
  await until("node2 and node3 to see it", 3000, () => h2.texts("node1").length === 1 && h3.texts("node1").length === 1);
  console.log(`  figure: alarm published on node1 seen by node2 and node3 in ${(performance.now() - t0).toFixed(1)} ms`);
  assert.equal(h2.texts("node1"), ["node1 PSU2 failed"]);
  b1.publishAlarm(a.id, "");
  await until("the clear", 3000, () => h2.texts("node1").length === 0 && h3.texts("node1").length === 0);
  b1.publishAlarm(a.id, alarmPayload(a));
  await until("raised again", 3000, () => h3.texts("node1").length === 1);
});

s("a receiver that registers late gets what is held", async (ctx) => {
  const late = holder(ctx.buses.get("node3")!);
  assert.equal(late.texts("node1"), ["node1 PSU2 failed"]);
});

s("a restarted broker gets its node's alarms again; peers forget and relearn them", async (ctx) => {
  const h2 = holder(ctx.buses.get("node2")!);
  await ctx.h.stopBroker("node1");
  await ctx.h.startBroker("node1"); // no persistence: its retained messages are gone
  await until("node1's broker back for node1 and node2", 5000, () => connected(ctx.buses.get("node1")!) && connected(ctx.buses.get("node2")!));
  await until("the alarm back on node2", 3000, () => h2.texts("node1").length === 1);
  assert.ok(h2.stamps.some((x) => x.from === "node1" && x.id === null), "node2 dropped node1's alarms when its broker came back");
});

s("a malformed or forged alarm is counted and dropped", async (ctx) => {
  const b2 = ctx.buses.get("node2")!;
  const h2 = holder(b2);
  const before = b2.stats().rejects;
  b2.ingest("node1", "bollard/v1/al/node1/alarm/psu:node1:PSU1", Buffer.from("{not json"));
  b2.ingest("node1", "bollard/v1/al/node1/alarm/psu:node1:PSU1", Buffer.from(alarmPayload(alarm("node3", "psu:node1:PSU1", "x"))));
  b2.ingest("node1", "bollard/v1/al/node1/alarm/psu:node1:PSU1", Buffer.from(JSON.stringify({ v: 1, id: "psu:node1:PSU1" })));
  const after = b2.stats().rejects;
  assert.is(after["not-json"] - before["not-json"], 1);
  assert.is(after["wrong-sender"] - before["wrong-sender"], 1);
  assert.is(after.schema - before.schema, 1);
  assert.equal(h2.texts("node1"), ["node1 PSU2 failed"]);
});

s.run();
