// N+1 readiness (issue 17 item 3, docs/readiness.md): for each node, could the cluster lose it
// now? Pure: the view, every node's resource report and every node's readiness body (its
// checks of the others' fence paths, its semi-sync status, its memory, its measured failover
// steps) in; per node a verdict and one line out. The I/O that gathers the checks is
// runtime/readiness.ts; the alarm is alarms/rules-ready.ts.
//
// Losing node X would
//   - stop the cluster        when fewer than a majority of the members would be left alive;
//   - stop S's writes         for a service S that X holds, when HA is disarmed, anti-flapping
//                             holds S's next failover, or no other live node has an in-sync
//                             replica of S (eligible as the failover picks candidates, ha/steps.ts,
//                             replicating from X, MySQL: heard from X lately; Redis: close behind);
//   - lose acknowledged S writes  MySQL: X's semi-sync master side is not acknowledging
//                             (Rpl_semi_sync_master_status OFF, or no semi-sync client);
//   - leave a VM down         when no survivor holds an in-sync copy of its disks, or the one that
//                             does cannot run it (memory capacity, hard anti-affinity): the VM
//                             manager's own rule (readiness-vms.ts);
//   - be slower               when X holds something and no fence level 1 or 2 was proven
//                             recently by whoever would fence it: the failover then waits for
//                             X's self-fence deadline (fence/deadline.ts).
// The predicted failover time: detection (peer_dead) + the lease wait when X leads + X's
// fence (the last measured, or the deadline when no fast path is proven) + the last measured
// steps up to the VIP's move; null until a failover of S has been measured.
import type { ClusterConfig, FenceCheck, Measured, ReadyBody, ResReport } from "../bus/messages.ts";
import { majority } from "../cluster/register.ts";
import { armed, flapHold, type Svc, restoring } from "./flags.ts";
import { vmBlocks, vmsOn } from "./readiness-vms.ts";
import { ineligible } from "./steps.ts";
import type { VmCatalog } from "./vm-types.ts";

export type Verdict = "yes" | "slower" | "no" | "down";

/** What losing a node would do, and why: "losing node2 would <effect>: <why>". */
export interface Effect {
  effect: string;
  why: string;
}

export interface NodeReadiness {
  node: string;
  verdict: Verdict;
  /** what would stop, most serious first (verdict "no") */
  blocks: Effect[];
  /** what would be slower (verdict "slower") */
  slows: Effect[];
  /** what holds, for the operator: in-sync replicas, fence levels proven */
  notes: string[];
  /** services it holds: predicted failover ms if it were lost now; null: not measured yet */
  predictedMs: Partial<Record<Svc, number | null>>;
  /** how the prediction adds up, per service */
  breakdown: Partial<Record<Svc, string>>;
}

export interface Readiness {
  /** wall ms judged */
  at: number;
  /** false: the cluster could not lose at least one of its nodes now; null: this node cannot tell */
  ok: boolean | null;
  /** the one line: "can lose any one node: yes" or "losing node2 would stop MySQL writes: no in-sync replica" */
  line: string;
  nodes: NodeReadiness[];
}

export interface ReadinessTiming {
  peerDeadMs: number;
  quorumLossMs: number;
  maxDrift: number;
  watchdogMs: number;
  fenceMarginMs: number;
  antiFlapMs: number;
  /** a fence check older than this proves nothing any more */
  checkMaxAgeMs: number;
  /** a MySQL replica that heard nothing from its source (events or heartbeats) for this long is not in sync */
  recvStaleMs: number;
  /** a Redis replica further behind its master than this many bytes is not in sync */
  redisLagBytes: number;
}

export interface ReadinessInput {
  /** wall ms */
  wall: number;
  /** the judging node */
  self: string;
  /** its view: quorum, leader, who is alive, the committed config */
  quorum: boolean;
  leader: string | null;
  alive: Record<string, boolean>;
  committed: Pick<ClusterConfig, "members" | "assignments" | "flags">;
  /** the services the data path runs */
  services: Svc[];
  /** every node's latest resource report, this node's own included */
  reports: Record<string, ResReport | null | undefined>;
  /** every node's latest readiness body, this node's own included */
  bodies: Record<string, ReadyBody | null | undefined>;
  /** which fence levels each node has configured */
  fencing: Record<string, { bmc: boolean; ports: boolean }>;
  /** the VMs defined (config vms:), when there are any: their restarts are judged too */
  vms?: VmCatalog | null;
  t: ReadinessTiming;
}

const SVC_NAME: Record<Svc, string> = { mysql: "MySQL", redis: "Redis" };
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
/** the steps of a failover, in order, up to clients writing again (repointOthers comes after) */
const UNTIL_WRITABLE = ["confirmLost", "pickCandidate", "commitConfig", "applyRelayLog", "promote", "switchPortal", "moveVip"];

/** ms after the last contact when a lost node has certainly fenced itself (fence/deadline.ts). */
export function deadlineMs(t: ReadinessTiming): number {
  return Math.ceil((t.quorumLossMs + t.watchdogMs) * (1 + t.maxDrift)) + t.fenceMarginMs;
}

/** Whether replica `n` could take `svc` over from `holder` without losing what was acknowledged; why not. */
function inSync(inp: ReadinessInput, svc: Svc, holder: string, n: string): string | null {
  if (!inp.alive[n]) return "down";
  const r = inp.reports[n]?.[svc] ?? null;
  const bad = ineligible(svc, n, r, inp.committed.flags);
  if (bad) return bad;
  if (r!.role !== "replica") return `not a replica (${r!.role})`;
  if (r!.source !== holder) return r!.source ? `replicates from ${r!.source}` : "replicates from nobody";
  if (svc === "mysql") {
    if (typeof r!.recvAgoMs === "number" && r!.recvAgoMs > inp.t.recvStaleMs) return `nothing from ${holder} for ${sec(r!.recvAgoMs)}`;
  } else {
    const h = Number(inp.reports[holder]?.redis?.received ?? NaN);
    const lag = h - Number(r!.received);
    if (Number.isFinite(lag) && lag > inp.t.redisLagBytes) return `${lag} bytes behind`;
  }
  return null;
}

/** Who would fence `x` if it were lost: the leader, or, if `x` leads, any live survivor. */
function fencers(inp: ReadinessInput, x: string, survivors: string[]): string[] {
  return inp.leader && inp.leader !== x && inp.alive[inp.leader] ? [inp.leader] : survivors;
}

type Level = "ipmi" | "ports";
const LEVEL_NAME: Record<Level, string> = { ipmi: "IPMI power status", ports: "switch ports' SNMP write access" };

/** A fence level of `x` proven recently by every fencer, or why not. */
function levelProven(inp: ReadinessInput, x: string, level: Level, by: string[]): { ok: boolean; why: string; pending: boolean } {
  const bad: string[] = [];
  let unchecked = 0;
  for (const f of by) {
    const c: FenceCheck | undefined = inp.bodies[f]?.fence[x]?.[level];
    if (!c) (bad.push(`${f}: not checked yet`), unchecked++);
    else if (inp.wall - c.at > inp.t.checkMaxAgeMs) bad.push(`${f}: last checked ${sec(inp.wall - c.at)} ago`);
    else if (!c.ok) bad.push(`${f}: ${c.detail}`);
  }
  return bad.length ? { ok: false, why: `${LEVEL_NAME[level]}: ${bad.join("; ")}`, pending: unchecked === bad.length } : { ok: true, why: "", pending: false };
}

/** The latest measurement of `svc` anyone has, and the latest lease wait. */
function measured(inp: ReadinessInput, svc: Svc): Measured | null {
  let best: Measured | null = null;
  for (const b of Object.values(inp.bodies)) {
    const m = b?.measured[svc];
    if (m && (!best || m.at > best.at)) best = m;
  }
  return best;
}

function leaseWait(inp: ReadinessInput): number | null {
  let best: { at: number; ms: number } | null = null;
  for (const b of Object.values(inp.bodies)) if (b && b.leaseWaitMs !== null && (!best || b.at > best.at)) best = { at: b.at, ms: b.leaseWaitMs };
  return best?.ms ?? null;
}

export function nodeReadiness(inp: ReadinessInput, x: string): NodeReadiness {
  const out: NodeReadiness = { node: x, verdict: "yes", blocks: [], slows: [], notes: [], predictedMs: {}, breakdown: {} };
  const members = inp.committed.members.map((m) => m.name);
  if (!inp.alive[x]) {
    out.verdict = "down";
    out.notes.push(`${x} is down: the cluster runs without it now`);
    return out;
  }
  const survivors = members.filter((n) => n !== x && inp.alive[n]);
  const need = majority(members.length);
  if (survivors.length < need) {
    const down = members.filter((n) => n !== x && !inp.alive[n]);
    out.blocks.push({ effect: "stop the cluster", why: `${survivors.length} of ${members.length} members would be left, ${need} needed for a quorum${down.length ? ` (${down.join(", ")} already down)` : ""}` });
  }
  const flags = inp.committed.flags;
  const held = inp.services.filter((s) => inp.committed.assignments[s] === x);
  const vmIn = inp.vms ? { catalog: inp.vms, committed: inp.committed, alive: inp.alive } : null;
  const holdsSomething = held.length > 0 || inp.committed.assignments.vip === x || (vmIn !== null && vmsOn(vmIn, x).length > 0);
  for (const svc of held) {
    const name = SVC_NAME[svc];
    const hold = flapHold(flags, svc, inp.wall, inp.t.antiFlapMs);
    const rs = restoring(flags, svc);
    if (rs) out.notes.push(`${name} writes stopped: restore --replace ${rs.id} under way (since ${new Date(rs.at).toISOString()})`);
    if (!armed(flags)) out.blocks.push({ effect: `stop ${name} writes`, why: "HA is disarmed: no automatic failover ('bollard ha arm')" });
    else if (hold) out.blocks.push({ effect: `stop ${name} writes`, why: hold });
    const cands = survivors.map((n) => ({ n, why: inSync(inp, svc, x, n) }));
    const good = cands.filter((c) => c.why === null).map((c) => c.n);
    if (!good.length) {
      const detail = cands.map((c) => `${c.n}: ${c.why}`).join("; ") || "no other node is up";
      out.blocks.push({ effect: `stop ${name} writes`, why: `no in-sync replica (${detail})` });
    } else out.notes.push(`${name}: in-sync replica on ${good.join(", ")}`);
    const semi = svc === "mysql" ? inp.bodies[x]?.semiSync : null;
    if (semi && (!semi.on || semi.clients < 1) && good.length) {
      out.blocks.push({ effect: "lose acknowledged MySQL writes", why: `semi-sync is not acknowledging on ${x} (Rpl_semi_sync_master_status ${semi.on ? "ON" : "OFF"}, clients ${semi.clients}): a replica may lack what clients were told is committed` });
    }
  }
  // fencing: only what x holds needs it now
  const fc = inp.fencing[x] ?? { bmc: false, ports: false };
  const by = fencers(inp, x, survivors);
  const levels: Level[] = [...(fc.bmc ? ["ipmi" as const] : []), ...(fc.ports ? ["ports" as const] : [])];
  const proven = levels.map((l) => ({ l, ...levelProven(inp, x, l, by) }));
  const fast = proven.some((p) => p.ok);
  if (fast) out.notes.push(`fence: ${proven.filter((p) => p.ok).map((p) => LEVEL_NAME[p.l]).join(" and ")} proven by ${by.join(", ")}`);
  if (proven.some((p) => !p.ok)) out.notes.push(`fence: ${proven.filter((p) => !p.ok).map((p) => p.why).join("; ")}`);
  // right after a start nothing is checked yet (the first round takes fence_check_ms): not a slow path yet
  if (!fast && holdsSomething && !(levels.length && proven.every((p) => p.pending))) {
    const why = levels.length ? proven.map((p) => p.why).join("; ") : "no BMC and no switch port configured for it";
    out.slows.push({ effect: `wait ${sec(deadlineMs(inp.t))} for its self-fence deadline before any failover`, why });
  }
  if (vmIn) out.blocks.push(...vmBlocks(vmIn, x));
  // the predicted failover time of what it holds
  const lw = inp.leader === x ? (leaseWait(inp) ?? 0) : 0;
  for (const svc of held) {
    const m = measured(inp, svc);
    if (!m) {
      out.predictedMs[svc] = null;
      out.breakdown[svc] = `no failover of ${svc} measured yet`;
      continue;
    }
    const fence = fast ? (m.steps.confirmFence ?? 0) : deadlineMs(inp.t) - inp.t.peerDeadMs;
    const steps = UNTIL_WRITABLE.reduce((a, s) => a + (m.steps[s] ?? 0), 0);
    out.predictedMs[svc] = Math.round(inp.t.peerDeadMs + lw + fence + steps);
    out.breakdown[svc] = `detection ${sec(inp.t.peerDeadMs)}${lw ? ` + lease wait ${sec(lw)}` : ""} + fence ${sec(fence)}${fast ? "" : " (deadline)"} + steps ${sec(steps)}, measured ${new Date(m.at).toISOString().slice(0, 19)}Z`;
  }
  out.verdict = out.blocks.length ? "no" : out.slows.length ? "slower" : "yes";
  return out;
}

/** Every member's readiness and the one line. */
export function readiness(inp: ReadinessInput): Readiness {
  const at = inp.wall;
  if (!inp.quorum) return { at, ok: null, line: `can lose any one node: unknown (${inp.self} has no quorum)`, nodes: [] };
  const nodes = inp.committed.members.map((m) => nodeReadiness(inp, m.name));
  const no = nodes.filter((n) => n.verdict === "no");
  const slow = nodes.filter((n) => n.verdict === "slower");
  const down = nodes.filter((n) => n.verdict === "down");
  let line: string;
  if (no.length) {
    const b = no[0]!.blocks[0]!;
    const more = no.length - 1 + no[0]!.blocks.length - 1;
    line = `losing ${no[0]!.node} would ${b.effect}: ${b.why}${more > 0 ? ` (+${more} more: bollard ready)` : ""}`;
  } else {
    const pred = nodes.flatMap((n) => Object.entries(n.predictedMs).filter(([, v]) => typeof v === "number").map(([s, v]) => `${s} ${sec(v!)}`));
    line = `can lose any ${down.length ? "other " : ""}one node: yes` +
      (slow.length ? `, slower for ${slow.map((n) => n.node).join(", ")} (${slow[0]!.slows[0]!.effect})` : "") +
      (pred.length ? `; failover ~${pred.join(", ")}` : "") +
      (down.length ? ` (${down.map((n) => n.node).join(", ")} down)` : "");
  }
  return { at, ok: no.length === 0, line, nodes };
}
