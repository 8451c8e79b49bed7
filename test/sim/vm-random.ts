// Randomized VM schedules (issue 14): the cluster, the VM layer and guests writing to their
// mirrored disks, under power cuts, partitions, agent stalls (the watchdog resets the node),
// BMC outages (fenced by the self-fence deadline), guests that crash, storage daemons that stop,
// MySQL going down (depends_on), operators' migrations, maintenance, stops and starts. The
// invariants V1-V5 (vm-world.ts) are checked after every step; at the end everything is healed
// and each VM must run exactly once, where the register says.
//   node --import tsx test/sim/vm-random.ts --seed N      prints the schedule and the transcript
import type { Command } from "../../agent/bus/messages.ts";
import { rng } from "./rng.ts";
import { leaderOf } from "./scenario.ts";
import { VmSim } from "./vm-world.ts";
import { World } from "./world.ts";

const NODES = ["node1", "node2", "node3"];
const VMS = ["cp1", "cp2", "cp3", "db", "app", "web1", "web2"];

export function generateVm(seed: number): string[] {
  const r = rng(seed);
  const pick = <T,>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  const int = (lo: number, hi: number) => Math.floor(lo + r() * (hi - lo + 1));
  const lines: string[] = [];
  const end = int(20_000, 40_000);
  const faults = int(1, 4);
  for (let i = 0; i < faults; i++) {
    const at = int(8000, end - 2000);
    const until = Math.min(at + int(500, 9000), end);
    const node = pick([...NODES, "leader"]);
    const vm = pick(VMS);
    switch (pick(["power", "power", "partition", "partition", "stall", "bmc", "guest", "storage", "mysql", "migrate", "maintenance", "stop", "restart", "agent"])) {
      case "agent": lines.push(`${at} agent-restart ${node} ${int(300, 3000)}`); break;
      case "power": lines.push(`${at} power ${node} off`, `${until} power ${node} on`); break;
      case "partition": lines.push(`${at} partition ${node}`, `${until} heal ${node}`); break;
      case "stall": lines.push(`${at} stall ${node} ${int(500, 6000)}`); break;
      case "bmc": lines.push(`${at} bmc ${node} down`, `${at + 50} partition ${node}`, `${until} heal ${node}`, `${until} bmc ${node} up`); break;
      case "guest": lines.push(`${at} guest-crash ${node} ${vm}`); break;
      case "storage": lines.push(`${at} storage ${node} down`, `${until} storage ${node} up`); break;
      case "mysql": lines.push(`${at} mysql down`, `${until} mysql up`); break;
      case "migrate": lines.push(`${at} vm-migrate ${vm} ${pick([...NODES, "any"])}`); break;
      case "maintenance": lines.push(`${at} maintenance ${pick(NODES)} on`, `${until} maintenance-off-all`); break;
      case "stop": lines.push(`${at} vm-stop ${vm}`, `${until} vm-start ${vm}`); break;
      case "restart": lines.push(`${at} vm-restart ${vm}`); break;
    }
  }
  // healed, every maintenance over, anti-flapping acknowledged (vm start of each), then settled
  // (a node a fence powered off after heal-all is powered on again, as an operator's rejoin would)
  lines.push(`${end} heal-all`, `${end + 1000} maintenance-off-all`, `${end + 4000} vm-start-all`, `${end + 8000} heal-all`, `${end + 12_000} vm-start-all`, `${end + 40_000} expect-settled`);
  return lines.map((l, i) => ({ l, i, at: Number(l.split(" ")[0]) })).sort((a, b) => a.at - b.at || a.i - b.i).map((x) => x.l);
}

export function runVmSeed(seed: number, record = false) {
  const lines = generateVm(seed);
  const w = new World(seed, undefined, true, record);
  for (const n of NODES) w.addNode(n, NODES);
  const sim = new VmSim(w);
  w.at(0, () => NODES.forEach((n) => w.start(n)));
  let end = 0;
  for (const line of lines) {
    const [at, op, ...args] = line.split(" ");
    end = Math.max(end, Number(at));
    w.at(Number(at), () => perform(w, sim, op!, args));
  }
  w.runUntil(end);
  return { seed, lines, violations: w.inv.violations, transcript: w.transcript, writes: sim.writes, boots: sim.boots, migrations: sim.migrations };
}

function perform(w: World, sim: VmSim, op: string, raw: string[]): void {
  const args = raw.map((a) => (a === "leader" ? leaderOf(w) ?? "node1" : a));
  w.log("---", op, args.join(" "));
  const viaLeader = (cmd: Command) => {
    const l = leaderOf(w);
    if (!l || !w.node(l).up) return w.log("---", "note", "no leader for the command");
    w.command(l, cmd, (r) => w.log(l, "cmd-result", r.status === "ok" ? `ok, epoch ${r.epoch}` : `error: ${r.error}`));
  };
  const cut = (n: string) => { for (const o of w.nodes.keys()) if (o !== n) { w.block(n, o); w.block(o, n); } };
  const heal = (n?: string) => { for (const k of [...w.blocked]) { const [a, b] = k.split(">"); if (!n || a === n || b === n) w.unblock(a!, b!); } };
  const wall = () => String(Math.round(1.7e12 + w.now));
  switch (op) {
    case "power": return args[1] === "off" ? sim.powerOff(args[0]!) : sim.powerOn(args[0]!);
    case "partition": return cut(args[0]!);
    case "heal": return heal(args[0]);
    case "stall": sim.watchdog(args[0]!, Number(args[1])); return w.stall(args[0]!, Number(args[1]));
    case "bmc": args[1] === "down" ? sim.bmcDown.add(args[0]!) : sim.bmcDown.delete(args[0]!); return;
    case "agent-restart": {
      if (!w.node(args[0]!).up) return;
      sim.agentOnly.add(args[0]!);
      w.crash(args[0]!);
      // the supervisor starts it again, unless the node lost its power meanwhile
      return w.at(w.now + Number(args[1]), () => { if (sim.powered(args[0]!)) w.start(args[0]!); });
    }
    case "guest-crash": return sim.guestCrash(args[0]!, args[1]!);
    case "storage": return sim.storage(args[0]!, args[1] === "up");
    case "mysql": return sim.setMysql(args[0] === "up");
    case "vm-migrate": return viaLeader({ op: "apply", why: "operator migration", flags: { [`vm-mig:${args[0]}`]: args[1]! } });
    case "vm-stop": return viaLeader({ op: "apply", why: "operator stop", flags: { [`vm-stop:${args[0]}`]: "operator" } });
    case "vm-start": return viaLeader({ op: "apply", why: "operator start", flags: { [`vm-stop:${args[0]}`]: null, [`vm-start:${args[0]}`]: wall() } });
    case "vm-restart": return viaLeader({ op: "apply", why: "operator restart", flags: { [`vm-restart:${args[0]}`]: wall() } });
    case "vm-start-all": return viaLeader({ op: "apply", why: "operator start of every VM", flags: Object.fromEntries(VMS.flatMap((v) => [[`vm-stop:${v}`, null], [`vm-start:${v}`, wall()]])) });
    case "maintenance": return viaLeader({ op: "apply", why: `maintenance ${args[1]}`, flags: { [`maint:${args[0]}`]: args[1] === "on" ? "on" : null } });
    case "maintenance-off-all": return viaLeader({ op: "apply", why: "maintenance off", flags: Object.fromEntries(NODES.map((n) => [`maint:${n}`, null])) });
    case "heal-all":
      heal();
      sim.bmcDown.clear();
      for (const n of NODES) sim.storage(n, true);
      sim.setMysql(true);
      for (const n of w.nodes.values()) if (!n.up) sim.powerOn(n.name);
      return;
    case "expect-settled": return sim.expectSettled();
    default: throw new Error(`unknown command ${op}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--seed");
  const seed = Number(i > 0 ? process.argv[i + 1] : 1);
  const r = runVmSeed(seed, true);
  console.log(r.lines.join("\n"));
  console.log(r.transcript.join("\n"));
  console.log(`\nseed ${seed}: ${r.violations.length} violations, ${r.writes} acknowledged guest writes, ${r.boots} boots, ${r.migrations} migrations`);
  for (const v of r.violations) console.log(`VIOLATION ${v}`);
}
