// Scenario commands of the HA simulation (see scenario.ts for the cluster ones):
//   <ms> ha                          start the HA layer and the client writer (before start)
//   <ms> power N off|on              power through the BMC (as the lab's `power`)
//   <ms> bmc N down|up               the node's BMC stops or starts answering
//   <ms> switchmgmt down|up          both switches' management (SNMP) stops or starts answering
//   <ms> switchover mysql [NODE]     planned switchover, through the leader
//   <ms> maintenance N on|off        drain N (nothing primary on it) and never fence it
//   <ms> failover mysql NODE|any     an operator's fenced failover, through the leader
//   <ms> mysqld N kill|hang|resume|start   one server dies (kill -9), hangs (SIGSTOP), wakes up, is started
//   <ms> mysqld N broken|fixed       its promotions fail (a relay log that cannot be applied), or work again
//   <ms> show-writes                 the acting leader's "writes are down" list (the CRITICAL alarm's input)
//   <ms> blip N MS                   power off and on again MS later (a power blip, a fast reset)
//   <ms> ha-disarm | ha-arm | ha-ack mysql
//   <ms> site remote|promote          a remote site's replica appears (the leader judges it, ha/site.ts), or is promoted there
//   <ms> restore mysql on|off        the register flag restore:mysql (`restore --replace` under way), through the leader
//   <ms> expect-room-readonly        no live node's MySQL is writable (after a remote site was promoted)
//   <ms> show-ha                     MySQL role, writability, data, route and VIP per node
//   <ms> expect-ha                   one writable primary, the one the register names, the VIP
//                                    on it, every acknowledged write on it, and every other live
//                                    node holding the same data (or held out for re-cloning)
import type { Command } from "../../agent/bus/messages.ts";
import { HaSim } from "./ha-world.ts";
import { leaderOf } from "./scenario.ts";
import type { World } from "./world.ts";

export function haCommand(w: World, op: string, args: string[]): boolean {
  const h = w.app instanceof HaSim ? w.app : null;
  const viaLeader = (cmd: Command) => {
    const l = leaderOf(w);
    if (!l) return w.log("---", "note", "no leader for the command");
    w.command(l, cmd, (r) => w.log(l, "cmd-result", r.status === "ok" ? `ok, epoch ${r.epoch}` : `error: ${r.error}`));
  };
  switch (op) {
    case "ha": new HaSim(w); return true;
    case "power": args[1] === "off" ? w.crash(args[0]) : w.start(args[0]); return true;
    case "bmc": args[1] === "down" ? h?.bmcDown.add(args[0]) : h?.bmcDown.delete(args[0]); return true;
    case "switchmgmt": if (h) h.switchMgmtDown = args[0] === "down"; return true;
    case "switchover": viaLeader({ op: "apply", why: "operator switchover", flags: { [`switchover:${args[0]}`]: args[1] ?? "any" } }); return true;
    case "failover": viaLeader({ op: "apply", why: "operator failover", flags: { [`failover-to:${args[0]}`]: args[1] ?? "any" } }); return true;
    case "mysqld": h?.mysqld(args[0], args[1]); return true;
    case "blip": w.crash(args[0]); w.at(w.now + Number(args[1] ?? 100), () => w.start(args[0])); return true;
    case "maintenance": viaLeader({ op: "apply", why: `maintenance ${args[1]}`, flags: { [`maint:${args[0]}`]: args[1] === "on" ? "on" : null } }); return true;
    case "ha-disarm": viaLeader({ op: "apply", why: "HA disarmed", flags: { ha: "disarmed" } }); return true;
    case "ha-arm": viaLeader({ op: "apply", why: "HA armed", flags: { ha: null } }); return true;
    case "ha-ack": viaLeader({ op: "apply", why: `failover of ${args[0]} acknowledged`, flags: { [`ack:${args[0]}`]: String(Math.round(1.7e12 + w.now)) } }); return true;
    case "show-ha": if (h) show(w, h); return true;
    case "restore": viaLeader({ op: "apply", why: `restore --replace ${args[1]}`, flags: { [`restore:${args[0]}`]: args[1] === "on" ? `sim-replace ${Math.round(1.7e12 + w.now)}` : null } }); return true;
    case "site": if (h) h.remote = { promoted: args[0] === "promote" }; return true;
    case "expect-room-readonly": {
      const writable = h ? [...h.n].filter(([n, x]) => x.db.writable && w.node(n).up).map(([n]) => n) : [];
      if (writable.length) { w.inv.violations.push(`t=${(w.now / 1000).toFixed(3)} HA writable while the room must be read-only: ${writable.join(",")}`); w.log("---", "VIOLATION", `HA writable: ${writable.join(",")}`); }
      return true;
    }
    case "show-writes": {
      const l = leaderOf(w);
      const down = l && h ? h.n.get(l)?.mgr.writesDown() ?? [] : [];
      if (!down.length) w.log(l ?? "---", "writes", "no service without a writable primary past the alarm bound");
      for (const d of down) w.log(l!, "writes", `${d.svc}: writes are down for ${Math.round(d.forMs / 1000)} s: ${d.why}; ${d.command ? `to let bollard act: ${d.command}` : "bollard is acting"}`);
      return true;
    }
    case "expect-ha": if (h) expect(w, h); return true;
    default: return false;
  }
}

function show(w: World, h: HaSim): void {
  for (const [name, x] of [...h.n].sort()) {
    const up = w.node(name).up;
    w.log(name, "ha-state", up ? `mysql ${x.db.proc === "running" ? "" : `${x.db.proc} `}${x.db.role}${x.db.writable ? " writable" : " read-only"} ${x.db.hist.length} writes${x.db.source ? ` from ${x.db.source}` : ""}; portal mysql->${x.portal.mysql ?? "none"}; vip ${x.vip ? "yes" : "no"}` : "down");
  }
  w.log("---", "writes", `${h.writes} written, ${h.acked.size} acknowledged`);
}

function expect(w: World, h: HaSim): void {
  const fail = (why: string) => { w.inv.violations.push(`t=${(w.now / 1000).toFixed(3)} HA ${why}`); w.log("---", "VIOLATION", `HA ${why}`); };
  const l = leaderOf(w);
  if (!l) return fail("no leader");
  const holder = w.node(l).core!.peek().committed.assignments.mysql;
  const writable = [...h.n].filter(([n, x]) => x.db.writable && w.node(n).up).map(([n]) => n);
  if (writable.length !== 1 || writable[0] !== holder) return fail(`writable ${writable.join(",") || "none"}, the register says ${holder}`);
  const vip = [...h.n].filter(([n, x]) => x.vip && w.node(n).up).map(([n]) => n);
  if (vip.length !== 1 || vip[0] !== holder) fail(`VIP on ${vip.join(",") || "nobody"}, MySQL primary ${holder}`);
  const primary = h.n.get(holder)!.db.hist;
  const have = new Set(primary);
  const lost = [...h.acked].filter((id) => !have.has(id));
  if (lost.length) fail(`${lost.length} acknowledged writes missing on ${holder}`);
  // the same data everywhere: every other live node is a replica holding the primary's history
  for (const [n, x] of h.n) {
    // cut off at the switches (out until rejoined) or by a partition still in place: not expected to follow
    if (n === holder || !w.node(n).up || x.local.heldOut.has("mysql") || h.portsDown.has(n) || w.blocked.has(`${holder}>${n}`)) continue;
    if (!x.db.up) fail(`${n}'s mysqld is ${x.db.proc}, not back as a replica`);
    // the same history, up to the writes still in flight (the client writes every 50 ms, replication every 20)
    else if (x.db.hist.some((id, i) => primary[i] !== id) || primary.length - x.db.hist.length > 2) fail(`${n} holds ${x.db.hist.length} writes, ${holder} ${primary.length}: not the same data`);
  }
}
