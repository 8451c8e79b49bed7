// Alarms over virtual time: readings -> rules -> engine, polled every second as the agent
// does. A steady fault raises once and clears once; a flapping link or a sensor hovering at
// its threshold raises at most a bounded number of transitions, whatever the seed.
// ALARM_SEEDS (default 200) and ALARM_SEED (one seed) choose the seeds; a failure names
// the seed and the command that replays it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig, type AlarmsConfig } from "../../agent/alarms/config.ts";
import { AlarmEngine } from "../../agent/alarms/engine.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import type { Readings, Transition } from "../../agent/alarms/types.ts";
import { rng } from "./rng.ts";

const POLL = 1000;
const MAX_TRANSITIONS = 5;
const T0 = 1_732_190_400_000;

/** Node1's readings with its switchB link up or down and its CPU at `temp` °C. */
function readings(linkUp: boolean, temp: number, bmcUp = true): Readings {
  return {
    node: "node1",
    switches: [{ switch: "switchB", reachable: true, ports: [{ port: "swp1", node: "node1", nic: "eth1", oper: linkUp ? "up" : "down", admin: "up" }] }],
    bonds: [{ node: "node1", bond: "bond0", slaves: [{ name: "eth0", mii: "up" }, { name: "eth1", mii: linkUp ? "up" : "down" }] }],
    bmcs: [
      bmcUp
        ? { node: "node1", reachable: true, sensors: [{ name: "CPU Temp", value: temp, unit: "degrees C", severity: "ok", thresholds: { unc: 75, ucr: 80, unr: 95 } }] }
        : { node: "node1", reachable: false, error: "timeout" },
    ],
  };
}

/** Runs `world(t)` every POLL ms from 0 to `ms`, returning every transition. */
function run(ms: number, world: (t: number) => Readings, cfg: AlarmsConfig = defaultAlarmsConfig()): Transition[] {
  const e = new AlarmEngine("node1", cfg.damping);
  const out: Transition[] = [];
  for (let t = 0; t <= ms; t += POLL) {
    const active = new Set(e.active().map((a) => a.id));
    out.push(...e.step(T0 + t, evaluate(world(t), cfg.rules, active)).transitions);
  }
  return out;
}

/** Lifecycle invariants per id: raised, then updates/acks, then cleared; never two raises. */
function lifecycleViolations(ts: Transition[]): string[] {
  const open = new Map<string, number>();
  const bad: string[] = [];
  for (const t of ts) {
    const id = t.alarm.id;
    if (t.kind === "raised") {
      if (open.has(id)) bad.push(`${id} raised twice at ${t.at - T0}`);
      open.set(id, t.alarm.occurrence);
    } else if (!open.has(id) || open.get(id) !== t.alarm.occurrence) bad.push(`${id} ${t.kind} while not raised at ${t.at - T0}`);
    else if (t.kind === "cleared") open.delete(id);
  }
  return bad;
}

const summary = (ts: Transition[]) => ts.map((t) => `${(t.at - T0) / 1000}s ${t.kind} ${t.alarm.id}`);

const S = suite("alarms: steady faults");

S("a link down for a minute: port and bond raise once at once, clear once clear_after later", () => {
  const ts = run(120_000, (t) => readings(!(t >= 10_000 && t < 70_000), 40));
  assert.equal(summary(ts), [
    "10s raised port-down:switchB:swp1",
    "10s raised bond-degraded:node1:bond0",
    "80s cleared port-down:switchB:swp1",
    "80s cleared bond-degraded:node1:bond0",
  ]);
  assert.is(ts[0]!.alarm.text, "switchB port swp1 to node1 eth1 down");
  assert.is(ts[1]!.alarm.text, "node1 bond0 degraded: eth1 (switchB) down");
});

S("temperature 85 °C for a minute: raised (names node and sensor), cleared when it is back", () => {
  const ts = run(120_000, (t) => readings(true, t >= 5000 && t < 65_000 ? 85 : 60));
  assert.equal(summary(ts), ["5s raised temperature:node1:CPU_Temp-" + ts[0]!.alarm.id.split("-").at(-1), "75s cleared " + ts[0]!.alarm.id]);
  assert.equal([ts[0]!.alarm.severity, ts[0]!.alarm.text, ts[0]!.alarm.detail], ["major", "node1 CPU Temp over threshold", "85 degrees C >= upper critical 80"]);
});

S("the BMC unreachable in the middle of a fault holds the sensor alarm; then it clears", () => {
  const ts = run(200_000, (t) => readings(true, t < 50_000 ? 85 : 60, !(t >= 30_000 && t < 100_000)));
  assert.equal(
    ts.map((t) => `${(t.at - T0) / 1000}s ${t.kind} ${t.alarm.rule}`),
    ["0s raised temperature", "30s raised bmc-unreachable", "110s cleared temperature", "110s cleared bmc-unreachable"],
  );
});

const F = suite("alarms: flapping never floods");
const seeds = process.env.ALARM_SEED ? [Number(process.env.ALARM_SEED)] : Array.from({ length: Number(process.env.ALARM_SEEDS ?? 200) }, (_, i) => i + 1);
const replay = (seed: number) => `ALARM_SEED=${seed} node --import tsx test/sim/alarms.test.ts`;
let worst = 0;
let flapsSeen = 0;

for (const seed of seeds) {
  F(`seed ${seed}: a link that flaps for 3 minutes, then settles`, () => {
    const r = rng(seed);
    // link changes state every 0.2-4 s (polled every second) for 180 s, then stays up
    const changes: number[] = [];
    for (let t = 2000 + r() * 5000; t < 180_000; t += 200 + r() * 3800) changes.push(t);
    const up = (t: number) => t >= 180_000 || changes.filter((c) => c <= t).length % 2 === 0;
    // and the CPU hovers at its upper critical threshold, 80 ± 3 °C
    const temp = () => 80 + (r() * 2 - 1) * 3;
    const ts = run(900_000, (t) => readings(up(t), t < 180_000 ? temp() : 50));
    const bad = lifecycleViolations(ts);
    assert.equal(bad, [], `seed ${seed}: ${bad.join("; ")}; replay: ${replay(seed)}`);
    const per = new Map<string, number>();
    for (const t of ts) per.set(t.alarm.rule, (per.get(t.alarm.rule) ?? 0) + 1);
    for (const [rule, n] of per) {
      worst = Math.max(worst, n);
      // per occurrence at most: raised, marked flapping, escalated, de-escalated once the
      // lower level held, cleared (5), and one occurrence: never one transition per flap
      assert.ok(n <= MAX_TRANSITIONS, `seed ${seed}: ${rule} made ${n} transitions (${summary(ts.filter((t) => t.alarm.rule === rule)).join(", ")}); replay: ${replay(seed)}`);
    }
    const port = ts.filter((t) => t.alarm.rule === "port-down");
    assert.ok(port.length === 0 || (port[0]!.kind === "raised" && port.at(-1)!.kind === "cleared"), `seed ${seed}: port alarm raised and settled; replay: ${replay(seed)}`);
    assert.ok(port.filter((t) => t.kind === "raised").length <= 1, `seed ${seed}: one raise; replay: ${replay(seed)}`);
    flapsSeen += changes.length;
  });
}

F.after(() => console.log(`alarms sim: ${seeds.length} seeds, ${flapsSeen} link changes, at most ${worst} transitions per rule per run`));

S.run();
F.run();
