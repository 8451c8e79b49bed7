// Scenario runner: a timed command list in, a transcript out (pve-ha-manager's
// src/test/test-*/cmdlist and log.expect). Randomized schedules are generated in the same
// language, so any failing seed can be replayed and kept as a scenario.
//
//   seed N                      members a b c            timing lease_ms=2000 ...
//   <ms> start|crash|restart N...     <ms> partition N   <ms> heal [N]
//   <ms> oneway A B             (A's messages to B are lost)
//   <ms> isolate-leader         <ms> stall N MS          <ms> jump N MS
//   <ms> drop P | dup P | delay MIN MAX
//   <ms> cmd N assign SVC NODE | unassign SVC | add NODE | remove NODE
//   <ms> spawn N                (a new node that is not a member yet)
//   <ms> join N [wrong-token]   (a new node with only its seed joins by itself)
//   <ms> heal-all               (heal every partition, restart every crashed node, clean net)
//   <ms> show                   <ms> expect-live           <ms> end
// A node argument "leader" stands for the node that leads at that moment.
import type { Command } from "../../agent/bus/messages.ts";
import { DEFAULT_TIMING, type Timing } from "../../agent/cluster/timing.ts";
import { haCommand } from "./ha-commands.ts";
import { HaSim } from "./ha-world.ts";
import { SIM_TOKEN, World } from "./world.ts";

export interface RunResult {
  transcript: string[];
  violations: string[];
  world: World;
}

export interface RunOptions {
  drift?: boolean;
  record?: boolean;
}

const TIMING_KEYS: Record<string, keyof Timing> = {
  tick_ms: "tickMs", heartbeat_ms: "heartbeatMs", peer_dead_ms: "peerDeadMs", election_jitter_ms: "electionJitterMs",
  lease_ms: "leaseMs", quorum_loss_ms: "quorumLossMs", max_drift: "maxDrift", clock_jump_ms: "clockJumpMs", tilt_hold_ms: "tiltHoldMs",
};

export function runScript(script: string, opts: RunOptions = {}): RunResult {
  let seed = 1;
  let members: string[] = [];
  const timing: Timing = { ...DEFAULT_TIMING };
  const steps: { at: number; words: string[]; line: number }[] = [];
  script.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const words = line.split(/\s+/);
    if (words[0] === "seed") seed = Number(words[1]);
    else if (words[0] === "members") members = words.slice(1);
    else if (words[0] === "timing") for (const kv of words.slice(1)) {
      const [k, v] = kv.split("=");
      if (!(k in TIMING_KEYS)) throw new Error(`line ${i + 1}: unknown timing key ${k}`);
      timing[TIMING_KEYS[k]] = Number(v);
    }
    else if (/^\d+$/.test(words[0])) steps.push({ at: Number(words[0]), words: words.slice(1), line: i + 1 });
    else throw new Error(`line ${i + 1}: cannot read "${line}"`);
  });
  const w = new World(seed, timing, opts.drift ?? false, opts.record ?? true);
  for (const m of members) w.addNode(m, members);
  let end = 0;
  for (const s of steps) {
    end = Math.max(end, s.at);
    w.at(s.at, () => perform(w, s.words, s.line));
  }
  w.runUntil(end);
  return { transcript: w.transcript, violations: w.inv.violations, world: w };
}

function perform(w: World, words: string[], line: number): void {
  const [op, ...raw] = words;
  // "leader" as a node name means whichever node leads now.
  const args = raw.map((a) => (a === "leader" ? leaderOf(w) ?? "no-leader" : a));
  w.log("---", op, raw.join(" ") + (raw.includes("leader") ? ` (leader is ${leaderOf(w) ?? "none"})` : ""));
  if (args.includes("no-leader")) return;
  const num = (i: number) => {
    const v = Number(args[i]);
    if (!Number.isFinite(v)) throw new Error(`line ${line}: ${op} needs a number`);
    return v;
  };
  switch (op) {
    case "start": case "restart": return args.forEach((n) => w.start(n));
    case "crash": return args.forEach((n) => w.crash(n));
    case "spawn": w.addNode(args[0], []); return w.start(args[0]);
    case "join": return w.join(args[0], args[1] === "wrong-token" ? Buffer.from("not-the-token") : SIM_TOKEN);
    case "partition": return partition(w, args[0]);
    case "isolate-leader": {
      const l = leaderOf(w);
      w.log("---", "note", l ? `the leader is ${l}` : "no leader to isolate");
      return l ? partition(w, l) : undefined;
    }
    case "heal": return heal(w, args[0]);
    case "oneway": return w.block(args[0], args[1]);
    case "stall": if (w.app instanceof HaSim) w.app.watchdog(args[0], num(1)); return w.stall(args[0], num(1));
    case "jump": return w.jump(args[0], num(1));
    case "drop": w.net.drop = num(0); return;
    case "dup": w.net.dup = num(0); return;
    case "delay": w.net.minDelayMs = num(0); w.net.maxDelayMs = num(1); return;
    case "heal-all":
      heal(w);
      if (w.app instanceof HaSim) { w.app.portsDown.clear(); w.app.bmcDown.clear(); w.app.switchMgmtDown = false; }
      Object.assign(w.net, { drop: 0, dup: 0, minDelayMs: 1, maxDelayMs: 15 });
      for (const n of w.nodes.values()) if (!n.up) w.start(n.name);
      return;
    case "cmd": {
      const cmd = parseCommand(args.slice(1), line);
      return w.command(args[0], cmd, (r) => w.log(args[0], "cmd-result", r.status === "ok" ? `ok, epoch ${r.epoch}` : `error: ${r.error}`));
    }
    case "show": return show(w);
    case "expect-live": return expectLive(w);
    case "end": return;
    default:
      if (haCommand(w, op, args)) return;
      throw new Error(`line ${line}: unknown command ${op}`);
  }
}

function parseCommand(a: string[], line: number): Command {
  switch (a[0]) {
    case "assign": return { op: "assign", service: a[1], node: a[2] };
    case "unassign": return { op: "unassign", service: a[1] };
    case "add": return { op: "add", member: { name: a[1], bus: `${a[1]}:1883` } };
    case "remove": return { op: "remove", node: a[1] };
    default: throw new Error(`line ${line}: unknown cluster command ${a[0]}`);
  }
}

function partition(w: World, n: string): void {
  for (const o of w.nodes.keys()) if (o !== n) { w.block(n, o); w.block(o, n); }
}

function heal(w: World, n?: string): void {
  // a node fenced at the switch ports stays cut off: healing a partition does not turn its
  // ports back on (heal-all does, as an operator's rejoin would)
  const ports = w.app instanceof HaSim ? w.app.portsDown : new Set<string>();
  for (const k of [...w.blocked]) {
    const [a, b] = k.split(">");
    if ((!n || a === n || b === n) && (!n || (!ports.has(a) && !ports.has(b)))) w.unblock(a, b);
  }
}

export function leaderOf(w: World): string | null {
  let best: { name: string; term: number } | null = null;
  for (const n of w.nodes.values()) {
    const p = n.core?.peek();
    if (p && p.role === "leader" && (!best || p.term > best.term)) best = { name: n.name, term: p.term };
  }
  return best?.name ?? null;
}

function show(w: World): void {
  for (const n of [...w.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!n.core) { w.log(n.name, "state", "down"); continue; }
    const v = n.core.view();
    const asg = Object.entries(v.committed.assignments).map(([s, x]) => `${s}=${x}`).join(",") || "-";
    w.log(n.name, "state", `${v.role} term ${v.term} leader ${v.leader ?? "-"} quorum ${v.quorum ? "yes" : "no"} lease ${v.lease ? "yes" : "no"}` +
      ` tilt ${v.tilt ? "yes" : "no"} fenced ${v.selfFenced ? "yes" : "no"} epoch ${v.config.epoch}/${v.committed.epoch} members ${v.committed.members.map((m) => m.name).join(",")} ${asg}`);
  }
}

/** I4: with the faults healed and a majority connected, a leader exists and every node has its config. */
function expectLive(w: World): void {
  const l = leaderOf(w);
  const fail = (why: string) => { w.inv.violations.push(`t=${(w.now / 1000).toFixed(3)} I4 ${why}`); w.log("---", "VIOLATION", `I4 ${why}`); };
  if (!l) return fail("no leader");
  const lead = w.node(l).core!.peek();
  for (const n of w.nodes.values()) {
    const p = n.core?.peek();
    if (!p || n.name === l) continue;
    if (!lead.config.members.some((m) => m.name === n.name) && !p.config.members.some((m) => m.name === n.name)) continue;
    if (p.term !== lead.term) fail(`${n.name} is in term ${p.term}, the leader ${l} in ${lead.term}`);
    else if (p.committed.epoch !== lead.committed.epoch || p.config.epoch !== lead.config.epoch) fail(`${n.name} holds epoch ${p.config.epoch}/${p.committed.epoch}, the leader ${lead.config.epoch}/${lead.committed.epoch}`);
  }
}
