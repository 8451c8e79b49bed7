// Randomized HA schedules: the cluster and HA layers with a client writing through the VIP,
// and random power cuts and blips, partitions, BMC and switch-management outages, agent stalls,
// a MySQL server killed or hung, planned switchovers and operators' fenced failovers. Safety (I1-I6) is checked after every step; at the end everything is
// healed and the service must be back: one writable primary, the one the register names,
// with the VIP, holding every acknowledged write.
import { rng } from "./rng.ts";
import { runScript } from "./scenario.ts";

export function generateHa(seed: number): string {
  const r = rng(seed);
  const pick = <T,>(a: T[]): T => a[Math.floor(r() * a.length)];
  const int = (lo: number, hi: number) => Math.floor(lo + r() * (hi - lo + 1));
  const nodes = ["node1", "node2", "node3"];
  const lines = [`seed ${seed}`, `members ${nodes.join(" ")}`, "0 ha", `0 start ${nodes.join(" ")}`];
  const end = int(10000, 25000);
  const faults = int(1, 4);
  for (let i = 0; i < faults; i++) {
    const at = int(3500, end - 1000);
    const until = Math.min(at + int(500, 8000), end);
    const node = pick([...nodes, "leader"]);
    switch (pick(["power", "power", "partition", "partition", "bmc", "switchmgmt", "stall", "switchover", "kill", "mysqld-kill", "mysqld-hang", "blip", "failover"])) {
      // one server dies (its agent fences and restarts it) or hangs for a while (a stalled disk)
      case "mysqld-kill": lines.push(`${at} mysqld ${node} kill`); break;
      case "mysqld-hang": lines.push(`${at} mysqld ${node} hang`, `${until} mysqld ${node} resume`); break;
      // a power blip or a fast reset: the node is back before anyone failed it over
      case "blip": lines.push(`${at} blip ${node} ${int(50, 2500)}`); break;
      case "failover": lines.push(`${at} failover mysql ${pick(["node1", "node2", "node3", "any"])}`); break;
      case "power": lines.push(`${at} power ${node} off`, `${until} power ${node} on`); break;
      case "kill": lines.push(`${at} crash ${node}`, `${until} restart ${node}`); break;
      case "partition": lines.push(`${at} partition ${node}`, `${until} heal ${node}`); break;
      case "bmc": lines.push(`${at} bmc ${node === "leader" ? "node1" : node} down`, `${until} bmc ${node === "leader" ? "node1" : node} up`); break;
      case "switchmgmt": lines.push(`${at} switchmgmt down`, `${until} switchmgmt up`); break;
      case "stall": lines.push(`${at} stall ${node} ${int(500, 6000)}`); break;
      case "switchover": lines.push(`${at} switchover mysql ${pick(["node1", "node2", "node3", "any"])}`); break;
    }
  }
  // an operator acknowledges the failovers once the faults are healed: anti-flapping may have
  // held a second one (with its writes-down alarm, invariant I8), and the end state is checked
  lines.push(`${end} heal-all`, `${end + 3000} ha-ack mysql`, `${end + 12000} expect-ha`, `${end + 12000} end`);
  const head = lines.slice(0, 2);
  const timed = lines.slice(2).map((l, i) => ({ l, i, at: Number(l.split(" ")[0]) })).sort((a, b) => a.at - b.at || a.i - b.i);
  return [...head, ...timed.map((x) => x.l)].join("\n") + "\n";
}

export function runHaSeed(seed: number, record = false) {
  const script = generateHa(seed);
  const res = runScript(script, { drift: true, record });
  return { seed, script, violations: res.violations, transcript: res.transcript };
}
