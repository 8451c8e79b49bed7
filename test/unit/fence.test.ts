// Fence sequencing (agent/fence/) with fakes: a fake BMC, fake switches and a virtual clock
// that advances when slept on. The real ipmi_sim and snmpd runs are test/broker/fence.test.ts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { describeDeadline, selfFenceDeadline, waitSelfFenceDeadline } from "../../agent/fence/deadline.ts";
import { type Clock, type FenceDeps, fenceNode, type NodeFenceConfig, type PortControl, type PowerControl, unfence } from "../../agent/fence/fence.ts";
import type { PowerState, Result } from "../../agent/hw/ipmi-parse.ts";
import type { SwitchConfig } from "../../agent/hw/snmp.ts";
import type { FenceProof } from "../../agent/resources/types.ts";

const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };

class FakeClock implements Clock {
  t = 0;
  sleeps: number[] = [];
  now = () => this.t;
  sleep = async (ms: number) => {
    this.sleeps.push(ms);
    this.t += ms;
  };
}

/** A BMC: `reachable` false = every call fails after timeoutMs; `sticks` = power off accepted, stays on. */
class FakeBmc implements PowerControl {
  readonly bmc = "10.1.0.2:623";
  state: PowerState = "on";
  reachable = true;
  sticks = false;
  calls: string[] = [];
  constructor(private readonly clock: FakeClock, private readonly timeoutMs = 2000) {}
  private async answer(cmd: string, f: () => PowerState): Promise<Result<PowerState>> {
    this.calls.push(cmd);
    if (!this.reachable) {
      this.clock.t += this.timeoutMs;
      return { ok: false, error: `ipmitool ${cmd} on ${this.bmc}: no answer within 2.0 s (BMC unreachable or down?); exit 1: Error: Unable to establish IPMI v2 / RMCP+ session` };
    }
    this.clock.t += 30;
    return { ok: true, value: f() };
  }
  powerOff = () => this.answer("chassis power off", () => (this.sticks ? "off" : (this.state = "off")));
  powerOn = () => this.answer("chassis power on", () => (this.state = "on"));
  powerStatus = () => this.answer("chassis power status", () => this.state);
}

/** A switch with ports by ifDescr; `reachable` false = timeouts; `stuck` ports read back up. */
class FakeSwitch implements PortControl {
  readonly target: string;
  reachable = true;
  stuck = new Set<string>();
  admin = new Map<string, "up" | "down">();
  calls: string[] = [];
  constructor(readonly name: string, readonly clock: FakeClock, ports: string[]) {
    this.target = `${name} 10.1.9.${name === "switchA" ? 1 : 2}:161`;
    for (const p of ports) this.admin.set(p, "up");
  }
  private fail<T>(what: string): Result<T> {
    this.clock.t += 2000;
    return { ok: false, error: `snmp ${this.target}: ${what}: no answer after 2 x 1000 ms (switch unreachable, or wrong community?)` };
  }
  ifIndexOf = async (port: string): Promise<Result<number>> => {
    this.calls.push(`ifIndexOf ${port}`);
    if (!this.reachable) return this.fail("walk ifDescr");
    this.clock.t += 5;
    const i = [...this.admin.keys()].indexOf(port);
    return i < 0 ? { ok: false, error: `snmp ${this.target}: no port "${port}"` } : { ok: true, value: i + 1 };
  };
  setAdminStatus = async (ifIndex: number, s: "up" | "down"): Promise<Result<"up" | "down">> => {
    this.calls.push(`set ${ifIndex} ${s}`);
    if (!this.reachable) return this.fail(`set ifAdminStatus.${ifIndex}=${s}`);
    this.clock.t += 5;
    const port = [...this.admin.keys()][ifIndex - 1]!;
    if (!this.stuck.has(port)) this.admin.set(port, s);
    const back = this.admin.get(port)!;
    return back === s ? { ok: true, value: back } : { ok: false, error: `snmp ${this.target}: set ifAdminStatus.${ifIndex}=${s} accepted, read back ${back}` };
  };
  closed = 0;
  close = () => void this.closed++;
}

const sw = (name: string): SwitchConfig => ({ name, host: name === "switchA" ? "10.1.9.1" : "10.1.9.2", version: "2c", community: "private" });
const CONFIG: NodeFenceConfig = {
  bmc: { host: "10.1.0.2", user: "admin", passwordEnv: "BMC_PW" },
  switchPorts: [{ switch: sw("switchA"), port: "swp2" }, { switch: sw("switchB"), port: "swp2" }],
};
const TIMING = { quorumLossMs: 3000, watchdogMs: 10000, marginMs: 2000 };

interface Ctx { clock: FakeClock; bmc: FakeBmc; a: FakeSwitch; b: FakeSwitch; deps: FenceDeps; events: FenceProof[] }
function setup(): Ctx {
  const clock = new FakeClock();
  const bmc = new FakeBmc(clock);
  const a = new FakeSwitch("switchA", clock, ["swp1", "swp2", "swp3"]);
  const b = new FakeSwitch("switchB", clock, ["swp1", "swp2", "swp3"]);
  const deps: FenceDeps = { power: () => bmc, ports: (c) => (c.name === "switchA" ? a : b), clock, log: nolog };
  return { clock, bmc, a, b, deps, events: [] };
}
const fence = (c: Ctx, lastContactMs = 0, over: Partial<Parameters<typeof fenceNode>[1]> = {}) =>
  fenceNode({ node: "node2", config: CONFIG, lastContactMs }, { deps: c.deps, timing: TIMING, onProof: (p) => c.events.push(p), ...over });

const Levels = suite("fence: levels in order");
Levels("IPMI confirms: stops at level 1, switches untouched", async () => {
  const c = setup();
  c.clock.t = 1200;
  const r = await fence(c, 0);
  assert.equal([r.fenced, r.level, r.proofs.length], [true, "ipmi", 1]);
  assert.equal(r.proofs[0], { level: "ipmi", ok: true, detail: "chassis power off on 10.1.0.2:623; power status: off (1 read)", ms: 60 });
  assert.equal(c.events, r.proofs);
  assert.equal(c.bmc.calls, ["chassis power off", "chassis power status"]);
  assert.equal([c.a.calls, c.b.calls], [[], []]);
});
Levels("BMC unreachable: level 2 on both switches, read back", async () => {
  const c = setup();
  c.bmc.reachable = false;
  const r = await fence(c);
  assert.equal([r.fenced, r.level, r.proofs.map((p) => [p.level, p.ok])], [true, "switch-ports", [["ipmi", false], ["switch-ports", true]]]);
  assert.match(r.proofs[0]!.detail, /^chassis power off on 10\.1\.0\.2:623 failed \(.*unreachable.*\): not confirmed$/);
  assert.is(c.bmc.calls.length, 1); // no status reads from a BMC that did not take the command
  assert.is(r.proofs[1]!.detail,
    "ifAdminStatus down read back on switchA port swp2 (ifIndex 2); ifAdminStatus down read back on switchB port swp2 (ifIndex 2)");
  assert.equal([c.a.admin.get("swp2"), c.b.admin.get("swp2"), c.a.admin.get("swp1")], ["down", "down", "up"]);
  assert.equal([c.a.closed, c.b.closed], [1, 1]);
  assert.is(r.proofs[0]!.ms, 2000);
});
Levels("power off answered but status stays on: not confirmed, level 2", async () => {
  const c = setup();
  c.bmc.sticks = true;
  const r = await fence(c, 0, { ipmiConfirmMs: 1000, ipmiPollMs: 250 });
  assert.equal(r.proofs.map((p) => [p.level, p.ok]), [["ipmi", false], ["switch-ports", true]]);
  assert.match(r.proofs[0]!.detail, /^chassis power off on 10\.1\.0\.2:623; power status still on after \d+ ms \(\d reads\): not confirmed$/);
  assert.ok(c.bmc.calls.filter((x) => x === "chassis power status").length >= 3, "polled");
  assert.ok(r.proofs[0]!.ms <= 1000 + 30, `polled briefly (${r.proofs[0]!.ms} ms)`);
});
Levels("BMC and both switches unavailable: level 3 waits until the deadline", async () => {
  const c = setup();
  c.bmc.reachable = false;
  c.a.reachable = c.b.reachable = false;
  c.clock.t = 1500; // lost 1.5 s ago
  const r = await fence(c, 0);
  assert.equal([r.fenced, r.level], [true, "deadline"]);
  assert.equal(r.proofs.map((p) => [p.level, p.ok]), [["ipmi", false], ["switch-ports", false], ["deadline", true]]);
  assert.match(r.proofs[1]!.detail, /^switchA port swp2: snmp switchA .*no answer.*; switchB port swp2: snmp switchB .*: not confirmed$/);
  assert.ok(c.clock.t >= 15000, `waited until the deadline (${c.clock.t})`);
  assert.is(c.clock.t, 15000);
  assert.is(r.proofs[2]!.detail,
    "self-fence deadline passed: last contact + (quorum loss 3.0 s + watchdog 10.0 s) + margin 2.0 s = 15.0 s after last contact; " +
    "last contact was 7.5 s before the wait, waited 7.5 s"); // 1.5 + 2 s (BMC) + 2 x 2 s (switches, one fake clock)
  assert.equal(c.events.map((p) => p.level), ["ipmi", "switch-ports", "deadline"]);
});
Levels("one port reads back up: level 2 not confirmed, the other stays down", async () => {
  const c = setup();
  c.bmc.reachable = false;
  c.b.stuck.add("swp2");
  const r = await fence(c, 0);
  assert.equal(r.proofs.map((p) => [p.level, p.ok]), [["ipmi", false], ["switch-ports", false], ["deadline", true]]);
  assert.match(r.proofs[1]!.detail, /read back on switchA port swp2 \(ifIndex 2\); switchB port swp2 \(ifIndex 2\): .*accepted, read back up: not confirmed$/);
  assert.is(c.a.admin.get("swp2"), "down");
});
Levels("level 3 aborted: not fenced", async () => {
  const c = setup();
  c.bmc.reachable = false;
  c.a.reachable = c.b.reachable = false;
  const ac = new AbortController();
  const sleep = c.clock.sleep;
  c.clock.sleep = async (ms) => { await sleep(ms); if (c.clock.t > 9000) ac.abort(); };
  const r = await fence(c, 0, { signal: ac.signal });
  assert.equal([r.fenced, r.level, r.proofs[2]!.ok], [false, null, false]);
  assert.match(r.proofs[2]!.detail, /wait aborted \d+\.\d s before it: not confirmed$/);
});
Levels("called off while level 1 runs: level 2 is not tried, the ports stay up", async () => {
  // The lab: a failover abandoned because the node was heard again went on to shut the
  // live node's switch ports, and the cluster lost its majority.
  const c = setup();
  c.bmc.reachable = false;
  const ac = new AbortController();
  const off = c.bmc.powerOff;
  c.bmc.powerOff = async () => { const r = await off(); ac.abort(new Error("node2 is heard again")); return r; };
  const r = await fence(c, 0, { signal: ac.signal });
  assert.equal(r.proofs.map((p) => [p.level, p.ok]), [["ipmi", false], ["switch-ports", false]]);
  assert.equal([r.fenced, r.level], [false, null]);
  assert.match(r.proofs[1]!.detail, /^not tried: fencing node2 was called off \(node2 is heard again\)$/);
  assert.equal([c.a.calls, c.b.calls], [[], []]);
  assert.is(c.a.admin.get("swp2"), "up");
});
Levels("called off before it starts: no power command is sent", async () => {
  const c = setup();
  const ac = new AbortController();
  ac.abort("leader changed");
  const r = await fence(c, 0, { signal: ac.signal });
  assert.equal(c.bmc.calls, []);
  assert.is(c.bmc.state, "on");
  assert.not.ok(r.fenced);
});
Levels("nothing configured: levels 1 and 2 say so, level 3 still holds", async () => {
  const c = setup();
  const r = await fenceNode({ node: "node3", config: { switchPorts: [] }, lastContactMs: 0 }, { deps: c.deps, timing: TIMING });
  assert.equal(r.proofs.map((p) => p.detail.replace(/:.*/, "")), ["no BMC configured for node3", "no switch ports configured for node3", "self-fence deadline passed"]);
  assert.ok(r.fenced);
});
Levels("an adapter that throws is an unconfirmed attempt, not a crash", async () => {
  const c = setup();
  c.deps.power = () => { throw new Error("boom"); };
  const r = await fence(c);
  assert.equal([r.proofs[0]!.ok, r.proofs[0]!.detail, r.level], [false, "ipmi: boom: not confirmed", "switch-ports"]);
});
Levels.run();

const Deadline = suite("fence: self-fence deadline");
Deadline("the formula", () => {
  assert.is(selfFenceDeadline({ lastContactMs: 1000, ...TIMING }), 16000);
  assert.is(selfFenceDeadline({ lastContactMs: 1000, quorumLossMs: 3000, watchdogMs: 10000 }), 16000); // margin 2 s by default
  assert.is(selfFenceDeadline({ lastContactMs: 0, quorumLossMs: 3000, watchdogMs: 7000, marginMs: 500, maxDrift: 0.05 }), 11000);
  assert.is(describeDeadline({ lastContactMs: 0, quorumLossMs: 3000, watchdogMs: 7000, marginMs: 500, maxDrift: 0.05 }),
    "last contact + (quorum loss 3.0 s + watchdog 7.0 s) x 1.050 drift + margin 0.5 s = 11.0 s after last contact");
});
Deadline("already past: no wait", async () => {
  const clock = new FakeClock();
  clock.t = 20000;
  const p = await waitSelfFenceDeadline({ lastContactMs: 0, ...TIMING }, clock);
  assert.equal([p.ok, p.ms, clock.sleeps], [true, 0, []]);
});
Deadline("sleeps in steps up to exactly the deadline", async () => {
  const clock = new FakeClock();
  const p = await waitSelfFenceDeadline({ lastContactMs: 0, quorumLossMs: 1000, watchdogMs: 1000, marginMs: 500 }, clock, { stepMs: 1000 });
  assert.equal([p.ok, clock.t, clock.sleeps], [true, 2500, [1000, 1000, 500]]);
});
Deadline.run();

const Unfence = suite("fence: unfence");
Unfence("power on, then ports up, each read back", async () => {
  const c = setup();
  c.bmc.state = "off";
  for (const s of [c.a, c.b]) s.admin.set("swp2", "down");
  const r = await unfence({ node: "node2", config: CONFIG }, { deps: c.deps });
  assert.ok(r.ok);
  assert.equal(r.proofs.map((p) => p.detail), [
    "chassis power on on 10.1.0.2:623; power status: on (1 read)",
    "ifAdminStatus up read back on switchA port swp2 (ifIndex 2); ifAdminStatus up read back on switchB port swp2 (ifIndex 2)",
  ]);
  assert.equal([c.bmc.state, c.a.admin.get("swp2"), c.b.admin.get("swp2")], ["on", "up", "up"]);
});
Unfence("a BMC that does not answer: ports still come up, the result says not ok", async () => {
  const c = setup();
  c.bmc.reachable = false;
  c.a.admin.set("swp2", "down");
  const r = await unfence({ node: "node2", config: CONFIG }, { deps: c.deps });
  assert.equal([r.ok, r.proofs.map((p) => p.ok)], [false, [false, true]]);
  assert.is(c.a.admin.get("swp2"), "up");
});
Unfence.run();
