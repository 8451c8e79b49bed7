// One full hardware poll as the watch makes it (agent/runtime/watch-poll.ts), of every BMC and
// every switch in a node's config at once: sensors and the SEL of the 3 BMCs over IPMI, the
// IF-MIB ports of the 2 switches over SNMP. Run inside a node's namespace by alarms.test.ts:
//   ip netns exec node1 node --import tsx test/lab/bench-poll.ts $S/node1/bollard.yaml [ROUNDS]
// Prints one JSON line: {rounds: [ms...], bmcMs: {...}, switchMs: {...}, errors: [...]}.
import { loadConfig } from "../../agent/config/load.ts";
import type { Logger } from "../../agent/env/env.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HwPoller, bmcConfig, ipmitoolHome, switchConfig } from "../../agent/runtime/watch-poll.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const [file, roundsArg] = process.argv.slice(2);
const r = loadConfig(file!, { secrets: false });
if (!r.ok || !r.config.ha) {
  console.error(r.ok ? `${file}: no ha section` : r.errors.join("\n"));
  process.exit(2);
}
const ha = r.config.ha.ha;
const home = ipmitoolHome(mkdtempSync(join(tmpdir(), "bollard-ipmitool-")), quiet)!; // as the watch runs ipmitool
const poller = new HwPoller(
  Object.entries(ha.nodes).flatMap(([node, n]) => (n.bmc ? [{ node, cfg: bmcConfig(n.bmc) }] : [])),
  Object.entries(ha.switches).map(([name, s]) => switchConfig(name, s)),
  { log: quiet, now: () => performance.now(), ipmitoolHome: home },
);
const rounds: number[] = [];
const bmcMs: Record<string, number[]> = {};
const switchMs: Record<string, number[]> = {};
const errors: string[] = [];
await poller.pollAll(true); // the first: SNMP sessions made, SEL baselines read
for (let i = 0; i < Number(roundsArg ?? 10); i++) {
  const p = await poller.pollAll(true);
  rounds.push(p.ms);
  for (const b of p.bmcs) {
    (bmcMs[b.node] ??= []).push(b.ms);
    if (!b.sensors.ok) errors.push(b.sensors.error);
  }
  for (const s of p.switches) {
    (switchMs[s.switch] ??= []).push(s.ms);
    if (!s.ports.ok) errors.push(s.ports.error);
  }
  await new Promise((res) => setTimeout(res, 200));
}
poller.close();
rmSync(home, { recursive: true, force: true });
console.log(JSON.stringify({ rounds, bmcMs, switchMs, errors }));
