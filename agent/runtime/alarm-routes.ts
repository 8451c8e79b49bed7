// The control socket's alarm routes, served by the agent (the watch mounts them) for
// `bollard alarms` (cli/alarms-cmd.ts) and the console:
//   GET  /alarms[?all=1]   {status:"ok", node, active: ClusterAlarm[], cleared?: Alarm[]}
//   POST /alarms/ack       {id, who} -> {status:"ok", alarm, forwarded, acked, warnings} | {status:"error", error}
// The active list is cluster-wide: every node's retained alarms merged with this node's own.
// An ack applies to this node's own alarm, and is forwarded to every other node that raised
// it (alarms/remote-ack.ts): each applies it to its own engine and answers.
import type { AlarmEngine } from "../alarms/engine.ts";
import type { AlarmHistory } from "../alarms/history.ts";
import { mergeAlarms, occurrences, type ClusterAlarm } from "../alarms/history.ts";
import type { ForwardResult } from "../alarms/remote-ack.ts";
import { ACKED_BY_RE, ALARM_ID_RE, type Alarm, type Transition } from "../alarms/types.ts";
import type { Route } from "./control.ts";

export interface AlarmRouteDeps {
  node: string;
  engine: AlarmEngine;
  history: AlarmHistory;
  /** every node's retained alarms as received over MQTT (this node's may be among them) */
  retained(): Iterable<Alarm>;
  /** wall-clock ms */
  wall(): number;
  /** an ack's transition: publish the retained alarm, append it to history, notify */
  onTransitions(ts: Transition[]): void;
  /** ms since `node` was last heard when it is unreachable now, else null (stale rows) */
  unreachableFor?(node: string): number | null;
  /** acks on other nodes for an alarm they raised (RemoteAck.forward); without it such an ack is refused */
  forwardAck?(id: string, who: string, reporters: string[]): Promise<ForwardResult>;
}

/** how many recently cleared alarms GET /alarms?all=1 returns (and the CLI reads from history) */
export const RECENT = 100;

/** For ControlHandlers.routes: {"GET /alarms": ..., "POST /alarms/ack": ...}. */
export function alarmRoutes(d: AlarmRouteDeps): Record<string, Route> {
  const cluster = (): ClusterAlarm[] => {
    const local = d.engine.active();
    const others = [...d.retained()].filter((a) => a.reporter !== d.node);
    return mergeAlarms([...local, ...others], d.unreachableFor);
  };
  return {
    "GET /alarms": async (q) => {
      // pending: conditions this node judges true that wait out their raise_after (an upgrade's baseline)
      const body: Record<string, unknown> = { status: "ok", node: d.node, active: cluster(), pending: d.engine.pending(d.wall()) };
      if (q.get("all") === "1") body.cleared = occurrences(d.history.read(RECENT * 4).records).filter((a) => a.state === "cleared").slice(0, RECENT);
      return { code: 200, body };
    },
    "POST /alarms/ack": async (_q, raw) => {
      const b = raw as { id?: unknown; who?: unknown } | null;
      if (typeof b?.id !== "string" || !ALARM_ID_RE.test(b.id)) return { code: 400, body: { status: "error", error: "id: expected an alarm id ([A-Za-z0-9._:-], 1-128)" } };
      if (typeof b.who !== "string" || !ACKED_BY_RE.test(b.who)) return { code: 400, body: { status: "error", error: "who: expected 1-100 printable characters" } };
      const id = b.id;
      const local = d.engine.ack(id, b.who, d.wall());
      if (local.ok && local.transition) d.onTransitions([local.transition]);
      const remote = [...new Set([...d.retained()].filter((a) => a.id === id && a.reporter !== d.node && a.state !== "cleared").map((a) => a.reporter))].sort();
      if (!local.ok && remote.length === 0) return { code: 404, body: { status: "error", error: local.error } };
      const r: ForwardResult = { acked: [], errors: [] };
      if (remote.length && d.forwardAck) Object.assign(r, await d.forwardAck(id, b.who, remote));
      else if (remote.length && !local.ok) r.errors.push(`alarm ${id} is raised by ${remote.join(", ")}: run "bollard alarms ack ${id}" there`);
      // acknowledged somewhere: ok, with what failed elsewhere as warnings; nowhere: an error
      if (!local.ok && r.acked.length === 0) return { code: 409, body: { status: "error", error: r.errors.join("; ") } };
      const alarm = local.ok ? local.alarm : null;
      return { code: 200, body: { status: "ok", alarm, forwarded: r.acked.map((a) => a.node), acked: r.acked, warnings: r.errors } };
    },
  };
}
