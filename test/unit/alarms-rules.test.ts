// Alarm rules: readings in, conditions (id, severity, text naming node and part) out.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AlarmsSection, checkAlarmsRelations, defaultAlarmsConfig, toAlarmsConfig, type RuleConfig } from "../../agent/alarms/config.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import { ALARM_ID_RE, alarmId, idPart, type Readings, type SensorInput } from "../../agent/alarms/types.ts";

const cfg = (f: (c: RuleConfig) => void = () => {}): RuleConfig => {
  const c = defaultAlarmsConfig().rules;
  f(c);
  return c;
};
const texts = (r: Readings, c = cfg(), active: string[] = []) => evaluate(r, c, new Set(active)).conditions.map((x) => `${x.severity} ${x.id} | ${x.text}`);
const temp = (value: number | null): SensorInput => ({
  name: "CPU Temp",
  value,
  unit: "degrees C",
  status: "ok",
  severity: "ok",
  thresholds: { lnr: null, lcr: null, lnc: null, unc: 75, ucr: 80, unr: 95 },
});
const bmc = (sensors: SensorInput[], node = "node1"): Readings => ({ node: "node1", bmcs: [{ node, reachable: true, sensors }] });

const S = suite("rules: sensors and BMC");

S("temperature over threshold names node and sensor; hysteresis holds it until below", () => {
  const id = alarmId("temperature", "node1", "CPU Temp");
  assert.equal(texts(bmc([temp(85)])), [`major ${id} | node1 CPU Temp over threshold`]);
  assert.is(evaluate(bmc([temp(85)]), cfg()).conditions[0]!.detail, "85 degrees C >= upper critical 80");
  assert.equal(texts(bmc([temp(76)])), [`minor ${id} | node1 CPU Temp over threshold`]);
  assert.equal(texts(bmc([temp(74)])), []);
  assert.equal(texts(bmc([temp(74)]), cfg(), [id]), [`minor ${id} | node1 CPU Temp over threshold`], "within hysteresis_c");
  assert.equal(texts(bmc([temp(72)]), cfg(), [id]), []);
  assert.ok(evaluate(bmc([temp(72)]), cfg()).scopes.includes(id), "judged: a held alarm clears");
  assert.ok(!evaluate(bmc([temp(null)]), cfg()).scopes.includes(id), "no reading: not judged");
  assert.equal(texts(bmc([temp(60)]), cfg((c) => (c.temperature.warnC = 55))), [`minor ${id} | node1 CPU Temp over threshold`]);
});

S("a fan at 0 RPM is stopped; below its lower threshold is slow; 'ns' is not judged", () => {
  const fan = (value: number | null, severity: SensorInput["severity"] = "ok"): SensorInput => ({ name: "FAN1", value, unit: "RPM", severity, thresholds: { lcr: 1000, lnc: 1500 } });
  assert.equal(texts(bmc([fan(0)])), ["major fan:node1:FAN1 | node1 FAN1 stopped"]);
  assert.equal(texts(bmc([fan(900)])), ["major fan:node1:FAN1 | node1 FAN1 below threshold"]);
  assert.equal(texts(bmc([fan(1400)])), ["minor fan:node1:FAN1 | node1 FAN1 below threshold"]);
  assert.equal(texts(bmc([fan(5000)])), []);
  assert.equal(evaluate(bmc([fan(null, "unknown")]), cfg()).scopes, ["bmc-unreachable:node1"]);
  assert.equal(texts(bmc([fan(0)]), cfg((c) => c.ignoreSensors.push("FAN1"))), []);
});

S("PSU failure from the state text or the asserted offsets", () => {
  const psu = (p: Partial<SensorInput>): SensorInput => ({ name: "PSU2 Status", value: null, unit: "discrete", discrete: true, ...p });
  assert.equal(texts(bmc([psu({ states: "Presence detected, Failure detected" })], "node2")), ["major psu:node2:PSU2_Status-" + idPart("PSU2 Status").split("-")[1] + " | node2 PSU2 failed"]);
  assert.match(texts(bmc([psu({ offsets: [0, 3] })], "node2"))[0]!, /\| node2 PSU2 input lost$/);
  assert.match(texts(bmc([psu({ offsets: [0, 2] })], "node2"))[0]!, /^minor .* predictive failure$/);
  assert.equal(texts(bmc([psu({ offsets: [0] })], "node2")), []);
  assert.equal(texts(bmc([{ name: "Chassis Intru", value: null, unit: "discrete", discrete: true, states: "General Chassis intrusion" }])), []);
});

S("BMC unreachable: one alarm, and its sensors are not judged (held)", () => {
  const r: Readings = { node: "node1", bmcs: [{ node: "node2", reachable: false, error: "ipmitool: Unable to establish IPMI v2 / RMCP+ session" }] };
  const ev = evaluate(r, cfg());
  assert.equal(texts(r), ["major bmc-unreachable:node2 | node2 BMC unreachable"]);
  assert.equal(ev.scopes, ["bmc-unreachable:node2"]);
});

S("SEL entries are info events, held, at most max_per_poll and a summary", () => {
  const sel = Array.from({ length: 3 }, (_, i) => ({ id: 0x10 + i, sensor: "Power Supply PSU2", event: "Failure detected", direction: "asserted" as const }));
  const ev = evaluate({ node: "node1", bmcs: [{ node: "node2", reachable: true, sel }] }, cfg((c) => (c.sel.maxPerPoll = 2)));
  assert.equal(ev.conditions.map((c) => [c.id, c.severity, c.hold, c.text]), [
    ["sel:node2:10", "info", 600_000, "node2 SEL 10: Power Supply PSU2 Failure detected"],
    ["sel:node2:11", "info", 600_000, "node2 SEL 11: Power Supply PSU2 Failure detected"],
    ["sel:node2:more", "info", 600_000, "node2 SEL: more new entries than shown"],
  ]);
});

const N = suite("rules: switches and bond");
const sw = (oper: string, admin = "up"): Readings => ({
  node: "node1",
  switches: [
    {
      switch: "switchB",
      reachable: true,
      ports: [
        { port: "swp1", node: "node1", nic: "eth1", oper, admin },
        { port: "swp9", node: null, oper: "down", admin: "up" },
      ],
    },
  ],
  bonds: [{ node: "node1", bond: "bond0", mode: "active-backup", activeSlave: "eth0", slaves: [{ name: "eth0", mii: "up" }, { name: "eth1", mii: oper === "up" ? "up" : "down", linkFailures: 1 }] }],
});

N("a port down names switch, port and node; the bond is degraded and names the switch", () => {
  assert.equal(texts(sw("down")), [
    "major port-down:switchB:swp1 | switchB port swp1 to node1 eth1 down",
    "major bond-degraded:node1:bond0 | node1 bond0 degraded: eth1 (switchB) down",
  ]);
  assert.equal(texts(sw("up")), []);
  assert.equal(texts(sw("down", "down")), ["minor port-disabled:switchB:swp1 | switchB port swp1 to node1 eth1 disabled", "major bond-degraded:node1:bond0 | node1 bond0 degraded: eth1 (switchB) down"]);
  assert.ok(texts(sw("up"), cfg((c) => (c.ports.unmapped = true))).includes("major port-down:switchB:swp9 | switchB port swp9 down"));
});

N("both bond slaves down is critical; an unreachable switch holds its ports", () => {
  const r: Readings = { node: "node3", bonds: [{ node: "node3", bond: "bond0", slaves: [{ name: "eth0", mii: "down", switch: "switchA" }, { name: "eth1", mii: "down", switch: "switchB" }] }] };
  assert.equal(texts(r), ["critical bond-degraded:node3:bond0 | node3 bond0 down: eth0 (switchA), eth1 (switchB) down"]);
  const u: Readings = { node: "node1", switches: [{ switch: "switchA", reachable: false, error: "Request timed out" }] };
  assert.equal(texts(u), ["major switch-unreachable:switchA | switchA unreachable"]);
  assert.equal(evaluate(u, cfg()).scopes, ["switch-unreachable:switchA"]);
});

const C = suite("rules: host, cluster, resources, events");

C("disk nearly full by level, memory, time sync", () => {
  const r = (used: number): Readings => ({ node: "node1", host: { node: "node1", filesystems: [{ mount: "/var/lib/mysql", usedRatio: used }, { mount: "/", usedRatio: 0.2 }], memUsedRatio: 0.97, timeSync: "unsynced" } });
  assert.equal(texts(r(0.9)), [
    "minor disk-full:node1:var.lib.mysql | node1 filesystem /var/lib/mysql nearly full",
    "minor memory-high:node1 | node1 memory nearly exhausted",
    "minor time-unsynced:node1 | node1 clock not synchronised",
  ]);
  assert.match(texts(r(0.96))[0]!, /^major disk-full:node1:var.lib.mysql/);
  assert.ok(evaluate(r(0.5), cfg()).scopes.includes("disk-full:node1:root"));
});

C("quorum lost, node lost, clock skew (one id per pair of nodes)", () => {
  const r: Readings = {
    node: "node2",
    cluster: { node: "node2", quorum: false, member: true, peers: [{ name: "node1", alive: true, skewMs: -900 }, { name: "node3", alive: false, skewMs: null }] },
  };
  assert.equal(texts(r), ["critical quorum-lost:node2 | node2 lost quorum", "minor clock-skew:node1:node2 | clock skew between node1 and node2", "major node-lost:node3 | node3 lost"]);
  const skew = evaluate(r, cfg()).conditions.find((c) => c.rule === "clock-skew")!;
  assert.is(skew.detail, "node1 is 900 ms behind node2");
  assert.equal(texts({ ...r, cluster: { ...r.cluster!, member: false } }), []);
});

C("mysql and redis: down, replication broken, lag", () => {
  const m = { up: true, role: "replica" as const, ioRunning: true, sqlRunning: false, lagSeconds: null, lastError: "Error 1062: Duplicate entry" };
  assert.equal(texts({ node: "node2", mysql: m }), ["major replica-broken:node2:mysql | node2 mysql replication broken"]);
  assert.is(evaluate({ node: "node2", mysql: m }, cfg()).conditions[0]!.detail, "SQL thread stopped; Error 1062: Duplicate entry");
  assert.ok(!evaluate({ node: "node2", mysql: m }, cfg()).scopes.includes("repl-lag:node2:mysql"), "lag unknown: held");
  assert.equal(texts({ node: "node2", mysql: { ...m, sqlRunning: true, lagSeconds: 75, lastError: null } }), ["major repl-lag:node2:mysql | node2 mysql replication lagging"]);
  assert.equal(texts({ node: "node2", mysql: { ...m, up: false } }), ["major service-down:node2:mysql | node2 mysql down"]);
  assert.equal(texts({ node: "node3", redis: { up: true, role: "replica", linkUp: false, source: "198.18.1.1:6379" } }), ["major replica-broken:node3:redis | node3 redis replication broken"]);
});

C("events: fence failed (held until ack), failover done (held), fence done settles", () => {
  const ev = evaluate(
    { node: "node1", events: [{ kind: "fence-failed", target: "node2", detail: "ipmi: timeout; switch-ports: switchB unreachable" }, { kind: "failover-done", service: "mysql", from: "node2", to: "node1", ms: 4200 }, { kind: "fence-done", target: "node3" }] },
    cfg(),
  );
  assert.equal(ev.conditions.map((c) => [c.severity, c.id, c.text, c.hold]), [
    ["critical", "fence-failed:node2", "fencing node2 failed", "ack"],
    ["info", "failover-done:mysql", "mysql failed over from node2 to node1", 600_000],
  ]);
  assert.equal(ev.resolved, ["fence-failed:node3"]);
});

C("a disabled rule produces nothing, but its subject is judged (a held alarm clears)", () => {
  const c = cfg((x) => x.disabled.push("port-down"));
  assert.equal(texts(sw("down"), c), ["major bond-degraded:node1:bond0 | node1 bond0 degraded: eth1 (switchB) down"]);
  assert.ok(evaluate(sw("down"), c).scopes.includes("port-down:switchB:swp1"));
});

C("ids are one MQTT topic level, stable, whatever the names", () => {
  for (const name of ["CPU Temp", "P1-DIMMA1 Temp", "fan#2/rear", "ünïcode", "a".repeat(300), "+#/"]) {
    const id = alarmId("temperature", "node1", name);
    assert.ok(ALARM_ID_RE.test(id), id);
    assert.is(alarmId("temperature", "node1", name), id);
  }
  assert.is.not(idPart("CPU Temp"), idPart("CPU_Temp"));
});

C("config: defaults, per-rule overrides, errors that say what was expected", () => {
  const d = defaultAlarmsConfig();
  assert.equal([d.damping.raiseAfterMs, d.damping.clearAfterMs, d.damping.maxClearAfterMs, d.damping.flappingAfter, d.rules.disk.warnRatio, d.history.keep], [0, 10_000, 600_000, 3, 0.85, 5]);
  const f = AlarmsSection.parse({ rules: { "node-lost": { raise_after_ms: 2000 }, sel: { enabled: false } }, disk: { warn_ratio: 0.9 } });
  const c = toAlarmsConfig(f);
  assert.equal(c.damping.perRule["node-lost"], { raiseAfterMs: 2000, clearAfterMs: undefined });
  assert.equal(c.rules.disabled, ["sel"]);
  assert.equal(checkAlarmsRelations(AlarmsSection.parse({ disk: { warn_ratio: 0.96 } })), ["alarms.disk: expected warn_ratio <= crit_ratio, got warn_ratio=0.96, crit_ratio=0.95"]);
  const bad = AlarmsSection.safeParse({ rules: { "port-dwn": {} }, clear_after_ms: -1, disk: { warn: 1 } });
  const msgs = bad.success ? [] : bad.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  const unknown = bad.success ? undefined : bad.error.issues.find((i) => i.code === "unrecognized_keys");
  assert.equal(unknown && [unknown.path, (unknown as { keys: string[] }).keys], [["rules"], ["port-dwn"]], "config/load.ts formatIssues names it and suggests port-down");
  assert.ok(msgs.includes("clear_after_ms: a whole number of milliseconds >= 0"), msgs.join("; "));
  assert.ok(msgs.some((m) => m.startsWith("disk")), msgs.join("; "));
});

S.run();
N.run();
C.run();
