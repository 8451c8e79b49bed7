// Fencing for real (agent/fence/ with the real adapters): ipmi_sim BMCs (bmc-harness.ts) and
// two snmpd switches (snmp-harness.ts), all in namespace btest-sw-<pid> with the test's own
// ipmitool and SNMP client. node1 is cabled to switchA swp1 and switchB swp3.
//   level 1: chassis power off, confirmed by power status, against ipmi_sim
//   level 2: with the BMC stopped, ifAdminStatus down on both switches, read back
//   level 3: with the BMC and both switches stopped, the self-fence deadline (short here)
// Each level's time is printed with its proof.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { type FenceResult, fenceNode, type NodeFenceConfig, realFenceDeps, unfence } from "../../agent/fence/fence.ts";
import { selfFenceDeadline } from "../../agent/fence/deadline.ts";
import type { FenceProof } from "../../agent/resources/types.ts";
import { BmcHarness } from "./bmc-harness.ts";
import { inNetns, SwitchHarness } from "./snmp-harness.ts";

const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };
const show = (p: FenceProof) => console.log(`    ${p.level.padEnd(12)} ${p.ok ? "confirmed    " : "not confirmed"} ${String(p.ms).padStart(5)} ms  ${p.detail}`);
const isUp = (state: string) => /<[^>]*\bUP\b[^>]*>/.test(state);

const ns = await inNetns(import.meta.url, 4);
if (ns) {
  const bmcs = await BmcHarness.start([{ name: "bmc1", host: "127.0.5.1" }, { name: "bmc2", host: "127.0.5.2" }]);
  const sw = await SwitchHarness.start([{ name: "switchA", host: "127.0.5.10" }, { name: "switchB", host: "127.0.5.11" }]);
  const config: NodeFenceConfig = {
    bmc: bmcs.config("bmc1"),
    switchPorts: [{ switch: sw.config("switchA"), port: "swp1" }, { switch: sw.config("switchB", "3"), port: "swp3" }],
  };
  const deps = realFenceDeps(nolog);
  const timing = { quorumLossMs: 3000, watchdogMs: 10000, marginMs: 2000 };
  const fence = async (lastContactMs: number, t = timing): Promise<FenceResult> => {
    const t0 = performance.now();
    const r = await fenceNode({ node: "node1", config, lastContactMs }, { deps, timing: t, onProof: show });
    console.log(`  fenced=${r.fenced} level=${r.level} in ${(performance.now() - t0).toFixed(0)} ms`);
    return r;
  };
  const back = async () => {
    const t0 = performance.now();
    const r = await unfence({ node: "node1", config }, { deps, onProof: show });
    console.log(`  unfence ok=${r.ok} in ${(performance.now() - t0).toFixed(0)} ms`);
    return r;
  };

  const Real = suite(`fence: real BMC and switches in ${ns}`);
  Real("level 1: chassis power off, confirmed by power status", async () => {
    const r = await fence(performance.now());
    assert.equal([r.fenced, r.level, r.proofs.length], [true, "ipmi", 1]);
    assert.match(r.proofs[0]!.detail, /^chassis power off on 127\.0\.5\.1:623; power status: off \(1 read\)$/);
    assert.is(bmcs.power("bmc1"), "off");
    assert.ok(isUp(sw.linkState("swp1")) && isUp(sw.linkState("swp3")), "switch ports untouched");
    const u = await back();
    assert.ok(u.ok);
    assert.is(bmcs.power("bmc1"), "on");
  });
  Real("BMC stopped: level 2, ports down on both switches, read back", async () => {
    await bmcs.stopBmc("bmc1");
    const r = await fence(performance.now());
    assert.equal([r.fenced, r.level, r.proofs.map((p) => p.ok)], [true, "switch-ports", [false, true]]);
    assert.match(r.proofs[0]!.detail, /no answer within 2\.\d s \(BMC unreachable or down\?\).*: not confirmed$/);
    assert.match(r.proofs[1]!.detail, /^ifAdminStatus down read back on switchA port swp1 \(ifIndex \d+\); ifAdminStatus down read back on switchB port swp3 \(ifIndex \d+\)$/);
    assert.not.ok(isUp(sw.linkState("swp1")));
    assert.not.ok(isUp(sw.linkState("swp3")));
    assert.ok(isUp(sw.linkState("swp2")) && isUp(sw.linkState("swp4")), "other nodes' ports untouched");
    await bmcs.startBmc("bmc1");
    const u = await back();
    assert.ok(u.ok);
    assert.match(u.proofs[1]!.detail, /ifAdminStatus up read back on switchA port swp1 .*; ifAdminStatus up read back on switchB port swp3/);
    assert.ok(isUp(sw.linkState("swp1")) && isUp(sw.linkState("swp3")));
  });
  Real("BMC and both switches stopped: level 3 after the (short) deadline", async () => {
    await bmcs.stopBmc("bmc1");
    await sw.stopSwitch("switchA");
    await sw.stopSwitch("switchB");
    const short = { quorumLossMs: 1000, watchdogMs: 2000, marginMs: 500 };
    const last = performance.now();
    const r = await fence(last, short);
    const end = performance.now();
    assert.equal([r.fenced, r.level, r.proofs.map((p) => p.ok)], [true, "deadline", [false, false, true]]);
    assert.match(r.proofs[1]!.detail, /switchA port swp1: .*no answer.*; switchB port swp3: .*no answer.*: not confirmed$/);
    assert.match(r.proofs[2]!.detail, /^self-fence deadline passed: last contact \+ \(quorum loss 1\.0 s \+ watchdog 2\.0 s\) \+ margin 0\.5 s = 3\.5 s after last contact/);
    assert.ok(end >= selfFenceDeadline({ lastContactMs: last, ...short }), "returned only after the deadline");
  });
  Real("stop: nothing left", async () => {
    const pids = [...bmcs.pids(), ...sw.pids()];
    await bmcs.stop();
    await sw.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0));
  });
  Real.run();
}
