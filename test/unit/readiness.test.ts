// N+1 readiness (issue 17 item 3, docs/readiness.md): the pure judgement (ha/readiness.ts),
// the failover steps it predicts from (runtime/readiness-meter.ts), the alarm rule
// (alarms/rules-ready.ts), and a simulated afternoon: the judgement stepped through a
// sequence of faults and repairs, each line as an operator would read it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AlarmsSection, toAlarmsConfig } from "../../agent/alarms/config.ts";
import type { DbReport, ReadyBody, ResReport } from "../../agent/bus/messages.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import { deadlineMs, readiness, type ReadinessInput } from "../../agent/ha/readiness.ts";
import type { VmDef } from "../../agent/ha/vm-types.ts";
import { FailoverMeter } from "../../agent/runtime/readiness-meter.ts";
import { readMem } from "../../agent/runtime/readiness-checks.ts";

const WALL = 1_800_000_000_000;
const DEFAULT_ALARMS = toAlarmsConfig(AlarmsSection.parse({}));
const NODES = ["node1", "node2", "node3"];

const db = (role: DbReport["role"], source: string | null, over: Partial<DbReport> = {}): DbReport => ({
  up: true, role, writable: role === "primary", received: "0-1-100", applied: "0-1-100", source, heldOut: null, recvAgoMs: role === "replica" ? 200 : undefined, ...over,
});
const res = (mysql: DbReport | null, redis: DbReport | null): ResReport => ({ v: 1, t: "res", mysql, redis, portal: { mysql: null, redis: null }, vip: false, selfFenced: false });
const ok = (detail = "ok") => ({ ok: true, at: WALL - 10_000, detail });
const body = (over: Partial<ReadyBody> = {}): ReadyBody => ({
  v: 1, at: WALL - 1000, fence: {}, semiSync: null, mem: { total: 8 * 2 ** 30, available: 4 * 2 ** 30 }, measured: {}, leaseWaitMs: null, ...over,
});

/** node1 leads and holds MySQL, Redis and the VIP; node2 and node3 replicate from it; every fence path proven by node1. */
function healthy(): ReadinessInput {
  const fenceAll = { ipmi: ok("power status on"), ports: ok("write access") };
  return {
    wall: WALL, self: "node1", quorum: true, leader: "node1",
    alive: { node1: true, node2: true, node3: true },
    committed: { members: NODES.map((name) => ({ name, bus: `${name}:1883` })), assignments: { mysql: "node1", redis: "node1", vip: "node1" }, flags: {} },
    services: ["mysql", "redis"],
    reports: {
      node1: res(db("primary", null), db("primary", null, { received: "5000", applied: "5000" })),
      node2: res(db("replica", "node1"), db("replica", "node1", { received: "4990", applied: "4990" })),
      node3: res(db("replica", "node1"), db("replica", "node1", { received: "5000", applied: "5000" })),
    },
    bodies: {
      node1: body({ fence: { node2: fenceAll, node3: fenceAll }, semiSync: { on: true, clients: 2, at: WALL - 2000 },
        measured: { mysql: { at: WALL - 3_600_000, totalMs: 1300, steps: { confirmLost: 0, confirmFence: 171, pickCandidate: 189, commitConfig: 51, promote: 636, switchPortal: 110, moveVip: 90, repointOthers: 40 } } } }),
      node2: body({ fence: { node1: fenceAll, node3: fenceAll } }),
      node3: body({ fence: { node1: fenceAll, node2: fenceAll } }),
    },
    fencing: { node1: { bmc: true, ports: true }, node2: { bmc: true, ports: true }, node3: { bmc: true, ports: true } },
    t: { peerDeadMs: 1200, quorumLossMs: 3000, maxDrift: 0.01, watchdogMs: 5000, fenceMarginMs: 2000, antiFlapMs: 600_000, checkMaxAgeMs: 180_000, recvStaleMs: 5000, redisLagBytes: 1 << 20 },
  };
}

const node = (r: ReturnType<typeof readiness>, n: string) => r.nodes.find((x) => x.node === n)!;

// ---------------------------------------------------------------------------------------
const J = suite("readiness: could the cluster lose each node now");

J("healthy: yes, with the predicted failover time from the last measured steps", () => {
  const r = readiness(healthy());
  assert.is(r.ok, true);
  assert.equal(r.nodes.map((n) => n.verdict), ["yes", "yes", "yes"]);
  // node1 leads: detection 1.2 + its lease wait (none measured: 0) + fence 0.171 + steps up to the VIP 1.076
  assert.is(node(r, "node1").predictedMs.mysql, 1200 + 171 + 1076);
  assert.is(node(r, "node1").predictedMs.redis, null, "no Redis failover measured yet");
  assert.is(r.line, "can lose any one node: yes; failover ~mysql 2.4 s");
  assert.match(node(r, "node1").notes.join("\n"), /MySQL: in-sync replica on node2, node3/);
  assert.match(node(r, "node1").notes.join("\n"), /fence: IPMI power status and switch ports' SNMP write access proven by node2, node3/);
});

J("the issue's example: no in-sync replica stops MySQL writes, and the line names why", () => {
  const inp = healthy();
  inp.reports.node2!.mysql = db("replica", null);
  inp.reports.node3!.mysql = db("replica", "node1", { recvAgoMs: 31_000 });
  const r = readiness(inp);
  assert.is(r.ok, false);
  assert.is(node(r, "node1").verdict, "no");
  assert.is(r.line, "losing node1 would stop MySQL writes: no in-sync replica (node2: replicates from nobody; node3: nothing from node1 for 31.0 s)");
  assert.equal([node(r, "node2").verdict, node(r, "node3").verdict], ["yes", "yes"], "the replicas' loss stops nothing");
});

J("quorum: with one node down, losing either other stops the cluster", () => {
  const inp = healthy();
  inp.alive.node3 = false;
  const r = readiness(inp);
  assert.equal(r.nodes.map((n) => n.verdict), ["no", "no", "down"]);
  assert.equal(node(r, "node2").blocks[0], { effect: "stop the cluster", why: "1 of 3 members would be left, 2 needed for a quorum (node3 already down)" });
  assert.match(r.line, /^losing node1 would stop the cluster: .*\(\+\d+ more: bollard ready\)$/);
});

J("semi-sync not acknowledging: acknowledged writes could be lost", () => {
  const inp = healthy();
  inp.bodies.node1!.semiSync = { on: false, clients: 0, at: WALL };
  const r = readiness(inp);
  assert.equal(node(r, "node1").blocks, [{ effect: "lose acknowledged MySQL writes", why: "semi-sync is not acknowledging on node1 (Rpl_semi_sync_master_status OFF, clients 0): a replica may lack what clients were told is committed" }]);
});

J("HA disarmed, anti-flapping, maintenance and a replica held out", () => {
  const dis = healthy();
  dis.committed.flags = { ha: "disarmed" };
  assert.match(readiness(dis).line, /^losing node1 would stop MySQL writes: HA is disarmed: no automatic failover \('bollard ha arm'\)/);
  const flap = healthy();
  flap.committed.flags = { "failover:redis": String(WALL - 60_000) };
  assert.match(readiness(flap).line, /^losing node1 would stop Redis writes: redis failed over 60 s ago \(anti-flapping period 10 min\); acknowledge with 'bollard ha ack redis'/);
  const maint = healthy();
  maint.committed.flags = { "maint:node2": "on" };
  maint.reports.node3!.mysql = db("replica", "node1", { heldOut: "extra transactions 0-3-9" });
  assert.match(readiness(maint).line, /no in-sync replica \(node2: in maintenance; node3: held out: extra transactions 0-3-9\)/);
});

J("Redis: a replica too far behind its master is not in sync", () => {
  const inp = healthy();
  inp.reports.node2!.redis = db("replica", "node1", { received: "1000", applied: "1000" });
  inp.reports.node3!.redis = db("replica", "node1", { received: "3000000", applied: "3000000" });
  inp.reports.node1!.redis = db("primary", null, { received: "5000000", applied: "5000000" });
  assert.match(readiness(inp).line, /^losing node1 would stop Redis writes: no in-sync replica \(node2: 4999000 bytes behind; node3: 2000000 bytes behind\)/);
});

J("fence paths: unproven makes a holder's failover wait for its deadline; not yet checked does not; stale does", () => {
  const inp = healthy();
  const fail = { ok: false, at: WALL - 5000, detail: "no answer within 2.0 s" };
  inp.bodies.node2!.fence.node1 = { ipmi: fail, ports: { ok: false, at: WALL - 5000, detail: "refused (noAccess)" } };
  let r = readiness(inp);
  assert.is(node(r, "node1").verdict, "slower");
  assert.is(node(r, "node1").slows[0]!.effect, `wait ${(deadlineMs(inp.t) / 1000).toFixed(1)} s for its self-fence deadline before any failover`);
  assert.match(node(r, "node1").slows[0]!.why, /IPMI power status: node2: no answer within 2\.0 s; switch ports' SNMP write access: node2: refused \(noAccess\)/);
  // the prediction takes the deadline for the fence
  assert.is(node(r, "node1").predictedMs.mysql, 1200 + (deadlineMs(inp.t) - 1200) + 1076);
  assert.match(r.line, /^can lose any one node: yes, slower for node1 \(wait 10\.1 s for its self-fence deadline before any failover\)/);
  // a replica that holds nothing needs no fence now: its broken path is a note
  inp.bodies.node1!.fence.node3 = { ipmi: fail };
  r = readiness(inp);
  assert.is(node(r, "node3").verdict, "yes");
  assert.match(node(r, "node3").notes.join("\n"), /fence: IPMI power status: node1: no answer/);
  // right after a start: nothing checked yet is not a slow path yet
  const fresh = healthy();
  for (const b of Object.values(fresh.bodies)) b!.fence = {};
  assert.equal(readiness(fresh).nodes.map((n) => n.verdict), ["yes", "yes", "yes"]);
  // but a check older than check_max_age proves nothing
  const stale = healthy();
  for (const b of Object.values(stale.bodies)) for (const f of Object.values(b!.fence)) { f.ipmi!.at = WALL - 600_000; f.ports!.at = WALL - 600_000; }
  assert.is(node(readiness(stale), "node1").verdict, "slower");
  assert.match(node(readiness(stale), "node1").slows[0]!.why, /node2: last checked 600\.0 s ago/);
});

J("who must have proven the fence: the leader for a follower, every survivor for the leader", () => {
  const inp = healthy();
  inp.bodies.node3!.fence.node2 = { ipmi: { ok: false, at: WALL, detail: "x" }, ports: { ok: false, at: WALL, detail: "y" } };
  inp.committed.assignments.mysql = "node2";
  inp.reports.node1!.mysql = db("replica", "node2");
  inp.reports.node2!.mysql = db("primary", null);
  inp.reports.node3!.mysql = db("replica", "node2");
  assert.is(node(readiness(inp), "node2").verdict, "yes", "node1 leads and fences node2: node3's failed check does not matter");
  inp.leader = "node2";
  assert.is(node(readiness(inp), "node2").verdict, "slower", "if node2 leads, node3 may lead after it: its check matters");
});

J("the leader's loss adds the lease wait it last measured", () => {
  const inp = healthy();
  inp.bodies.node2!.leaseWaitMs = 700;
  assert.is(node(readiness(inp), "node1").predictedMs.mysql, 1200 + 700 + 171 + 1076);
});

/** A VM definition for the readiness cases. */
const vm = (name: string, memoryMb: number, group: string | null, over: Partial<VmDef> = {}): VmDef => ({
  name, vcpus: 1, memoryMb, disks: [{ name: "root", sizeMb: 64, image: null }], nics: [], group, priority: 0, dependsOn: [], autostart: true, kernel: null, ...over,
});

J("VMs: each one on the lost node restarts only on its in-sync replica's node, if it fits there", () => {
  const inp = healthy();
  inp.vms = { defs: [vm("cp1", 1024, "cp"), vm("cp2", 1024, "cp"), vm("app1", 2048, null)], groups: { cp: { antiAffinity: "hard" } }, capacity: { node1: 4096, node2: 4096, node3: 4096 } };
  Object.assign(inp.committed.assignments, { "vm:cp1": "node1", "vm:cp2": "node2", "vm:app1": "node1" });
  Object.assign(inp.committed.flags, { "vm-synced:cp1": "node3", "vm-synced:cp2": "node3", "vm-synced:app1": "node2" });
  let r = readiness(inp);
  assert.equal(r.nodes.map((n) => n.verdict), ["yes", "yes", "yes"], "cp1 fits node3, app1 node2; cp2 node3");
  // cp2's replica on node1, where cp1 runs: a hard group member cannot restart there
  inp.committed.flags["vm-synced:cp2"] = "node1";
  assert.match(node(readiness(inp), "node2").blocks[0]!.why, /its replica's node cannot run it: node1: holds cp1 of group cp \(hard anti-affinity\)/);
  inp.committed.flags["vm-synced:cp2"] = "node3";
  // app1's mirror broke: its replica is outdated
  delete inp.committed.flags["vm-synced:app1"];
  r = readiness(inp);
  assert.is(node(r, "node1").verdict, "no");
  assert.equal(node(r, "node1").blocks.map((b) => b.effect), ["leave VM app1 down"]);
  assert.match(node(r, "node1").blocks[0]!.why, /no other node holds an in-sync copy of its disks/);
  assert.match(r.line, /^losing node1 would leave VM app1 down: no other node/);
  // its replica is on node2, where cp2 already runs: memory (4096 - 1024 = 3072 free) fits 2048 ...
  inp.committed.flags["vm-synced:app1"] = "node2";
  inp.vms.defs[2]!.memoryMb = 3500;
  r = readiness(inp);
  assert.equal(node(r, "node1").blocks.map((b) => b.effect), ["leave VM app1 down"], "... but not 3500 MB");
  assert.match(node(r, "node1").blocks[0]!.why, /its replica's node cannot run it: node2: 3072 MB free, 3500 MB needed/);
});

J("VMs: hard anti-affinity counts the survivors' group members, and restarts fill nodes in start order", () => {
  const inp = healthy();
  inp.vms = { defs: [vm("cp1", 512, "cp"), vm("cp2", 512, "cp"), vm("cp3", 512, "cp"), vm("db", 1024, null, { priority: 9 }), vm("web", 1024, null, { dependsOn: ["db"] })], groups: { cp: { antiAffinity: "hard" } }, capacity: { node1: 4096, node2: 4096, node3: 1536 } };
  Object.assign(inp.committed.assignments, { "vm:cp1": "node1", "vm:cp2": "node2", "vm:cp3": "node3", "vm:db": "node1", "vm:web": "node1" });
  Object.assign(inp.committed.flags, { "vm-synced:cp1": "node2", "vm-synced:cp2": "node3", "vm-synced:cp3": "node1", "vm-synced:db": "node3", "vm-synced:web": "node3" });
  const n1 = node(readiness(inp), "node1");
  // cp1's replica node2 already runs cp2 (hard group); db fills node3 (1536 - 512 cp3 = 1024), so web does not fit after it
  assert.equal(n1.blocks.map((b) => b.effect), ["leave VM cp1 down", "leave VM web down"], "db first (priority 9), then cp1 and web by name");
  assert.match(n1.blocks.find((b) => b.effect === "leave VM cp1 down")!.why, /node2: holds cp2 of group cp \(hard anti-affinity\)/);
  assert.match(n1.blocks.find((b) => b.effect === "leave VM web down")!.why, /node3: 0 MB free, 1024 MB needed/);
  // soft anti-affinity: cp1 may share node2 with cp2
  inp.vms.groups.cp!.antiAffinity = "soft";
  assert.equal(node(readiness(inp), "node1").blocks.map((b) => b.effect), ["leave VM web down"]);
  // an operator-stopped VM does not move, and a survivor in maintenance cannot take one
  inp.committed.flags["vm-stop:web"] = "operator";
  assert.is(node(readiness(inp), "node1").verdict, "yes");
  inp.committed.flags["maint:node3"] = "on";
  assert.match(node(readiness(inp), "node1").blocks[0]!.why, /node3: is in maintenance/);
});

J("without quorum this node cannot tell", () => {
  const inp = healthy();
  inp.quorum = false;
  const r = readiness(inp);
  assert.equal([r.ok, r.nodes.length, r.line], [null, 0, "can lose any one node: unknown (node1 has no quorum)"]);
});

J.run();

// ---------------------------------------------------------------------------------------
const M = suite("readiness: the measured failover steps, from the event log");

M("the last complete failover of each service, and the last lease wait; a failed one is not kept", () => {
  const m = new FailoverMeter();
  const line = (ts: string, kind: string, detail: string, fields?: Record<string, unknown>) => JSON.stringify({ ts, kind, node: "node2", term: 3, detail, fields });
  m.replay([
    line("2026-12-01T10:00:00.000Z", "role", "status change candidate => leader (elected in term 3 by node2,node3; lease usable in 712 ms)"),
    line("2026-12-01T10:00:01.000Z", "failover", "failover of mysql from node1 started: lost; steps confirmLost, confirmFence", { svc: "mysql", from: "node1", kind: "failover", cause: "lost" }),
    line("2026-12-01T10:00:01.100Z", "step", "failover mysql step confirmFence done in 157 ms", { svc: "mysql", step: "confirmFence", ms: 157 }),
    line("2026-12-01T10:00:01.400Z", "step", "failover mysql step promote done in 45 ms", { svc: "mysql", step: "promote", ms: 45 }),
    "{torn",
    line("2026-12-01T10:00:01.500Z", "failover", "failover of mysql from node1 to node3 done in 500 ms", { svc: "mysql", to: "node3", ms: 500, done: true }),
    line("2026-12-01T10:05:00.000Z", "failover", "failover of redis from node3 started: lost", { svc: "redis", from: "node3", kind: "failover" }),
    line("2026-12-01T10:05:00.100Z", "step", "failover redis step confirmFence done in 99 ms", { svc: "redis", step: "confirmFence", ms: 99 }),
    line("2026-12-01T10:05:10.000Z", "failover", "failover of redis from node3 FAILED at step pickCandidate: no candidate", { svc: "redis", step: "pickCandidate", failed: true }),
    line("2026-12-01T10:06:00.000Z", "step", "switchover mysql step promote done in 5 ms", { svc: "mysql", step: "promote", ms: 5 }),
  ].join("\n"));
  assert.equal(m.last.mysql, { at: Date.parse("2026-12-01T10:00:01.500Z"), totalMs: 500, steps: { confirmFence: 157, promote: 45 } });
  assert.is(m.last.redis, undefined, "the failed one is not a measurement");
  assert.is(m.leaseWaitMs, 712);
});

M("/proc/meminfo: MemTotal and MemAvailable in bytes", () => {
  assert.equal(readMem("MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   12288000 kB\n"), { total: 24576000 * 1024, available: 12288000 * 1024 });
  assert.is(readMem("garbage"), null);
});

M.run();

// ---------------------------------------------------------------------------------------
const A = suite("readiness: the not-ready alarm");

A("major when losing a node would stop something, minor when only slower, nothing when unknown", () => {
  const inp = healthy();
  inp.reports.node2!.mysql = db("replica", null);
  inp.reports.node3!.mysql = db("none", null);
  inp.bodies.node1!.fence.node2 = { ipmi: { ok: false, at: WALL, detail: "x" }, ports: { ok: false, at: WALL, detail: "y" } };
  inp.committed.assignments.vip = "node2";
  const e = evaluate({ node: "node1", readiness: readiness(inp) }, DEFAULT_ALARMS.rules);
  const byId = Object.fromEntries(e.conditions.map((c) => [c.id, c]));
  assert.equal(Object.keys(byId).sort(), ["not-ready:node1", "not-ready:node2"]);
  assert.equal([byId["not-ready:node1"]!.severity, byId["not-ready:node1"]!.text], ["major", "losing node1 would stop MySQL writes"]);
  assert.match(byId["not-ready:node1"]!.detail!, /no in-sync replica \(node2: replicates from nobody; node3: not a replica \(none\)\)/);
  assert.equal([byId["not-ready:node2"]!.severity, byId["not-ready:node2"]!.text], ["minor", "losing node2 would wait 10.1 s for its self-fence deadline before any failover"]);
  assert.ok(e.scopes.includes("not-ready:node3"), "node3 judged: its alarm clears");
  const unknown = evaluate({ node: "node1", readiness: { ok: null, nodes: [] } }, DEFAULT_ALARMS.rules);
  assert.equal([unknown.conditions.length, unknown.scopes.length], [0, 0], "not judged: held as it is");
});

A.run();

// ---------------------------------------------------------------------------------------
const Sim = suite("readiness: a simulated afternoon");

Sim("faults and repairs, one line each, as the console shows them", () => {
  const inp = healthy();
  const lines: string[] = [];
  const at = (what: string, change: () => void) => {
    change();
    lines.push(`${what.padEnd(40)} ${readiness(inp).line}`);
  };
  at("14:00 all well", () => {});
  at("14:05 node2's IO thread stops", () => { inp.reports.node2!.mysql = db("replica", null); });
  at("14:06 node3's link to node1 stalls", () => { inp.reports.node3!.mysql = db("replica", "node1", { recvAgoMs: 9000 }); });
  at("14:07 node3 catches up", () => { inp.reports.node3!.mysql = db("replica", "node1"); });
  at("14:10 semi-sync falls back to async", () => { inp.bodies.node1!.semiSync = { on: false, clients: 0, at: WALL }; });
  at("14:11 node2 replicates again", () => { inp.reports.node2!.mysql = db("replica", "node1"); inp.bodies.node1!.semiSync = { on: true, clients: 2, at: WALL }; });
  at("14:20 node1's BMC and switch access lost", () => { for (const n of ["node2", "node3"]) inp.bodies[n]!.fence.node1 = { ipmi: { ok: false, at: WALL, detail: "no answer" }, ports: { ok: false, at: WALL, detail: "noAccess" } }; });
  at("14:30 node3 powered off", () => { inp.alive.node3 = false; });
  at("14:35 node3 back, paths fixed", () => { inp.alive.node3 = true; for (const n of ["node2", "node3"]) inp.bodies[n]!.fence.node1 = { ipmi: ok(), ports: ok() }; });
  console.log(lines.map((l) => `  ${l}`).join("\n"));
  assert.equal(lines.map((l) => l.slice(41).split(":")[0]), [
    "can lose any one node", "can lose any one node", "losing node1 would stop MySQL writes", "can lose any one node",
    "losing node1 would lose acknowledged MySQL writes", "can lose any one node", "can lose any one node", "losing node1 would stop the cluster", "can lose any one node",
  ]);
  assert.match(lines[6]!, /slower for node1/);
});

Sim.run();
