// N+1 readiness's fence path checks for real (runtime/readiness-checks.ts): an ipmi_sim BMC
// (bmc-harness.ts) and two snmpd switches (snmp-harness.ts) in namespace btest-sw-<pid>.
// node1 is cabled to switchA swp1 and switchB swp3. Each check proves its level without
// using it: the power stays on, the ports stay up.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Config } from "../../agent/config/schema.ts";
import type { Logger } from "../../agent/env/env.ts";
import { FenceChecker } from "../../agent/runtime/readiness-checks.ts";
import { BmcHarness } from "./bmc-harness.ts";
import { inNetns, SwitchHarness } from "./snmp-harness.ts";

const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };
const isUp = (state: string) => /<[^>]*\bUP\b[^>]*>/.test(state);

const ns = await inNetns(import.meta.url, 4);
if (ns) {
  const bmcs = await BmcHarness.start([{ name: "bmc1", host: "127.0.5.1" }]);
  const sw = await SwitchHarness.start([{ name: "switchA", host: "127.0.5.10" }, { name: "switchB", host: "127.0.5.11" }]);
  const b = bmcs.config("bmc1");
  const swc = (name: string, write: string) => {
    const s = sw.config(name);
    return { host: s.host, port: s.port!, version: "2c" as const, community: "public", write_community: write, timeout_ms: 500 };
  };
  const ha = (write: string): NonNullable<Config["ha"]> => ({
    ha: {
      nodes: {
        node1: { address: "127.0.5.21", bmc: { host: b.host, port: b.port!, user: b.user, password_file: b.passwordFile!, cipher: 3, timeout_s: 1, retries: 1 }, ports: [{ switch: "switchA", port: "swp1" }, { switch: "switchB", port: "swp3" }] },
        node2: { address: "127.0.5.22", ports: [] },
      },
      switches: { switchA: swc("switchA", write), switchB: swc("switchB", write) },
      anti_flap_ms: 600_000, step_timeout_ms: 15_000, fence_timeout_ms: 60_000, watchdog_ms: 5000, fence_margin_ms: 2000, service_fail_ms: 2000, writes_down_alarm_ms: 5000,
    },
    mysql: null, redis: null, portal: null,
  });

  const Real = suite(`readiness: fence paths checked without using them, in ${ns}`);
  Real("IPMI power status and the ports' write access proven; power on, ports up, as they were", async () => {
    const c = new FenceChecker(ha("private"), nolog);
    const i = await c.ipmi("node1");
    const p = await c.ports("node1");
    console.log(`  ipmi: ${i.detail}\n  ports: ${p.detail}`);
    assert.ok(i.ok && /^127\.0\.5\.1: power status on \(\d+ ms\)$/.test(i.detail), JSON.stringify(i));
    assert.ok(p.ok && /^write access to switchA swp1, switchB swp3 \(\d+ ms\)$/.test(p.detail), JSON.stringify(p));
    assert.is(bmcs.power("bmc1"), "on");
    assert.ok(isUp(sw.linkState("swp1")) && isUp(sw.linkState("swp3")), "ports untouched");
    const none = await c.ipmi("node2");
    assert.equal([none.ok, none.detail], [false, "no BMC configured"]);
    c.close();
  });
  Real("a read-only write community, a BMC down: each a failed check that says why", async () => {
    const ro = new FenceChecker(ha("public"), nolog);
    const p = await ro.ports("node1");
    assert.ok(!p.ok && /write access to ifAdminStatus\.\d+: refused \(noAccess\).*; .*refused \(noAccess\)/.test(p.detail), JSON.stringify(p));
    ro.close();
    await bmcs.stopBmc("bmc1");
    const c = new FenceChecker(ha("private"), nolog);
    const i = await c.ipmi("node1");
    assert.ok(!i.ok && /no answer within/.test(i.detail), JSON.stringify(i));
    c.close();
  });
  Real("stop: nothing left", async () => {
    const pids = [...bmcs.pids(), ...sw.pids()];
    await bmcs.stop();
    await sw.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0));
  });
  Real.run();
}
