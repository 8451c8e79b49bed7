// The alarm engine as the agent runs it: rules + engine per tick, and each transition
// written to history, published retained on MQTT and handed to the notifier. Time, the bus
// and the notifier come in from the caller, so this runs the same in the simulator.
import type { Logger } from "../env/env.ts";
import type { AlarmsConfig } from "./config.ts";
import { AlarmEngine, type AckResult, type StepResult } from "./engine.ts";
import { AlarmHistory, CLEAR_PAYLOAD, alarmPayload, lastActive } from "./history.ts";
import { evaluate } from "./rules.ts";
import { SEVERITIES, type Readings, type Severity, type Transition } from "./types.ts";

export interface AlarmSinks {
  /** retained publish to bollard/v1/<cluster>/<this node>/alarm/<id>; "" clears it */
  publish(id: string, payload: string): void;
  /** e.g. Notifier.notify */
  notify(ts: Transition[]): void;
}

export class AlarmService {
  readonly engine: AlarmEngine;

  constructor(
    private readonly cfg: AlarmsConfig,
    readonly node: string,
    readonly history: AlarmHistory,
    private readonly sinks: AlarmSinks,
    private readonly log: Logger,
  ) {
    this.engine = new AlarmEngine(node, cfg.damping);
  }

  /** Takes back this node's alarms that were active at the last stop, and publishes them
   * again (retained), so a restart neither re-raises nor re-notifies them. */
  start(): void {
    const read = this.history.read();
    if (read.bad) this.log.warn("alarm history has unreadable lines", { dir: this.history.dir, bad: read.bad });
    for (const e of read.errors) this.log.error("alarm history unreadable", { err: e });
    const n = this.engine.restore(lastActive(read.records, this.node));
    for (const a of this.engine.active()) this.sinks.publish(a.id, alarmPayload(a));
    if (n) this.log.info("alarms restored from history", { count: n });
  }

  /** One evaluation of this node's readings at `now` (wall-clock ms). */
  step(now: number, readings: Readings): StepResult {
    const active = new Set(this.engine.active().map((a) => a.id));
    const r = this.engine.step(now, evaluate(readings, this.cfg.rules, active));
    this.emit(r.transitions);
    return r;
  }

  ack(id: string, who: string, now: number): AckResult {
    const r = this.engine.ack(id, who, now);
    if (r.ok && r.transition) this.emit([r.transition]);
    return r;
  }

  /** History, MQTT and notifications for transitions (also those an ack route made). */
  emit(ts: Transition[]): void {
    if (ts.length === 0) return;
    this.history.append(ts);
    for (const t of ts) {
      const a = t.alarm;
      this.sinks.publish(a.id, t.kind === "cleared" ? CLEAR_PAYLOAD : alarmPayload(a));
      const level = t.kind === "raised" && (a.severity === "critical" || a.severity === "major") ? "warn" : "info";
      this.log[level](`alarm ${t.kind}: ${a.text}`, { id: a.id, severity: a.severity, detail: a.detail, occurrence: a.occurrence, ...(t.kind === "acked" ? { by: a.ackedBy } : {}) });
    }
    try {
      this.sinks.notify(ts);
    } catch (e) {
      this.log.error("alarm notification failed", { err: e as Error });
    }
  }

  /** Own retained alarm ids (as read back from this node's broker) that are no longer
   * active: publish CLEAR_PAYLOAD to each (left over from before a crash). */
  staleRetained(retainedIds: Iterable<string>): string[] {
    const active = new Set(this.engine.active().map((a) => a.id));
    return [...retainedIds].filter((id) => !active.has(id));
  }

  /** Active alarms by severity (for metrics). */
  counts(): Record<Severity, number> {
    const c = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
    for (const a of this.engine.active()) c[a.severity]++;
    return c;
  }
}
