// The HA bookkeeping kept in the config register's flags (so a new leader knows it):
//   ha                  "disarmed" while an operator does network work (absent: armed)
//   maint:<node>        "on": drained, never fenced, never a candidate
//   fencing:<node>      a failover is fencing it: committed BEFORE the fence, so the node,
//                       if it comes back and catches up, stays read-only instead of
//                       resuming as primary
//   fenced:<node>       the proof that fenced it; cleared when it is back or on `rejoin`
//   failover:<svc>      wall ms of the last automatic failover (anti-flapping)
//   ack:<svc>           wall ms an operator acknowledged it (allows the next one)
//   freeze:<svc>        node whose primary a planned switchover has made read-only
//   switchover:<svc>    requested target of a planned switchover ("any" for any)
//   nofailover:<node>   "on": never promoted automatically
//   inst:<svc>          the incarnation of the holder's server the leader confirmed as primary:
//                       the holder's agent makes its server writable only while it reports this
//                       incarnation. A server that restarted (process restart, node reset,
//                       power blip, agent restart) has another, and stays read-only until the
//                       leader has compared its position with the replicas' (issue 22 item 2)
//   failover-to:<svc>   an operator's fenced failover (`bollard failover SVC --to NODE`): the
//                       node, or "any"
//   site-promoted:<site>  a remote site's MySQL was promoted (`bollard site promote`): this
//                       room's MySQL stays read-only, held for re-cloning (ha/site.ts)
//   restore:<svc>       "<id> <wall ms>": `bollard restore mysql --replace` is replacing the
//                       cluster's data (backup/replace.ts): the holder's server stays read-only
//                       (a failover's new holder too) until the command clears it, or
//                       `bollard restore mysql --replace --abort` does
import type { ClusterConfig } from "../bus/messages.ts";

export type Svc = "mysql" | "redis";
export const SERVICES: readonly Svc[] = ["mysql", "redis"];

type Flags = ClusterConfig["flags"];

export const armed = (f: Flags) => f.ha !== "disarmed";
export const inMaintenance = (f: Flags, node: string) => f[`maint:${node}`] === "on";
export const fencedProof = (f: Flags, node: string): string | null => f[`fenced:${node}`] ?? null;
/** being fenced or fenced: it must hold nothing writable */
export const fenceHeld = (f: Flags, node: string): boolean => `fencing:${node}` in f || `fenced:${node}` in f;
export const noFailover = (f: Flags, node: string) => f[`nofailover:${node}`] === "on";
export const frozen = (f: Flags, svc: Svc): string | null => f[`freeze:${svc}`] ?? null;
export const switchoverTarget = (f: Flags, svc: Svc): string | null => f[`switchover:${svc}`] ?? null;
export const confirmedInst = (f: Flags, svc: Svc): string | null => f[`inst:${svc}`] ?? null;
/** `restore:<svc>` = "<id> <wall ms>": the replace under way, or null. */
export function restoring(f: Flags, svc: Svc): { id: string; at: number } | null {
  const v = f[`restore:${svc}`];
  if (v === undefined) return null;
  const [id = "", at = ""] = v.split(" ");
  return { id: id || "?", at: Number(at) || 0 };
}
export const restoreFlag = (svc: Svc) => `restore:${svc}`;
export const failoverRequest = (f: Flags, svc: Svc): string | null => f[`failover-to:${svc}`] ?? null;

/** Anti-flapping: an automatic failover of `svc` is allowed unless one happened within `periodMs` and was not acknowledged. */
export function flapHold(f: Flags, svc: Svc, wallNow: number, periodMs: number): string | null {
  const last = Number(f[`failover:${svc}`] ?? NaN);
  if (!Number.isFinite(last)) return null;
  const ack = Number(f[`ack:${svc}`] ?? NaN);
  if (Number.isFinite(ack) && ack >= last) return null;
  const age = wallNow - last;
  return age < periodMs ? `${svc} failed over ${Math.round(age / 1000)} s ago (anti-flapping period ${Math.round(periodMs / 60000)} min); acknowledge with 'bollard ha ack ${svc}' to allow another` : null;
}
