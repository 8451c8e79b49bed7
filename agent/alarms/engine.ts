// The alarm engine (DESIGN §6): de-duplication, flap damping and the lifecycle
// raised -> acknowledged -> cleared, as one pure step function. It never reads a clock:
// `now` (wall-clock ms) comes with every call, so the simulator drives it with virtual time.
//
// Damping, per alarm id:
//  - raise: the condition has been true for raise_after_ms (0: at once). A condition that
//    keeps breaking off before that (flapping_after times within flap_window_ms) is raised
//    anyway, marked flapping: a link that bounces every second is a fault too.
//  - clear: the condition has been judged false for clear_after_ms x 2^flaps, at most
//    max_clear_after_ms. A flap is the condition coming back while the alarm is held (or a
//    re-raise within flap_window_ms of its clear), so a flapping condition stays raised once
//    and its hold grows, instead of raising and clearing on every bounce.
//  - at flapping_after flaps the alarm is marked flapping (one "updated" transition).
//  - a subject that was not judged (no reading) neither raises nor clears anything.
//  - event alarms (failover done, SEL entry, fence failed) are raised at once and held for
//    their hold time, or until acknowledged, or until a later event settles them.
//  - an "updated" transition means severity, text or flapping changed; new measured values
//    only refresh `detail`. A higher severity is applied at once; a lower one, or another
//    text, only once it has held for the clear hold, so a value hovering at a threshold
//    does not update on every poll. A raise after a clear is a new occurrence.
import type { DampingConfig } from "./config.ts";
import { severityRank, type Alarm, type Condition, type Evaluation, type Severity, type Transition } from "./types.ts";

export interface StepResult {
  transitions: Transition[];
  /** active alarms after the step, most severe first, then oldest first */
  active: Alarm[];
}

export type AckResult =
  | { ok: true; alarm: Alarm; transition: Transition | null }
  | { ok: false; error: string };

interface Track {
  cond: Condition;
  alarm: Alarm | null;
  occurrence: number;
  /** not yet raised: the condition has been true since */
  trueSince: number | null;
  /** raised: the condition has been judged false since */
  falseSince: number | null;
  flaps: number;
  /** not yet raised: how often it broke off, and since when */
  pendingFlaps: number;
  pendingFlapSince: number | null;
  clearedAt: number | null;
  /** raised: a lower severity or new text seen since, not yet applied */
  pending: { severity: Severity; text: string; node: string; since: number } | null;
}

const copy = (a: Alarm): Alarm => ({ ...a });

export function byImportance(a: Alarm, b: Alarm): number {
  return severityRank(a.severity) - severityRank(b.severity) || a.raisedAt - b.raisedAt || a.id.localeCompare(b.id);
}

export class AlarmEngine {
  private readonly tracks = new Map<string, Track>();

  constructor(
    /** this node: the reporter of every alarm raised here */
    readonly reporter: string,
    private readonly damping: DampingConfig,
  ) {}

  step(now: number, ev: Evaluation): StepResult {
    const out: Transition[] = [];
    const present = new Map<string, Condition>();
    for (const c of ev.conditions) {
      const seen = present.get(c.id);
      if (!seen || severityRank(c.severity) < severityRank(seen.severity)) present.set(c.id, c);
    }
    const scopes = new Set(ev.scopes);
    const resolved = new Set(ev.resolved);

    for (const c of present.values()) {
      let t = this.tracks.get(c.id);
      if (!t) {
        t = { cond: c, alarm: null, occurrence: 0, trueSince: null, falseSince: null, flaps: 0, pendingFlaps: 0, pendingFlapSince: null, clearedAt: null, pending: null };
        this.tracks.set(c.id, t);
      }
      t.cond = c;
      if (c.hold !== undefined) {
        const until = c.hold === "ack" ? "ack" : now + c.hold;
        if (!t.alarm) this.raise(t, now, out, until);
        else this.update(t, now, out, until);
        continue;
      }
      if (t.alarm) {
        if (t.falseSince !== null) {
          t.falseSince = null;
          t.flaps++;
        }
        this.update(t, now, out, null);
        continue;
      }
      if (t.pendingFlapSince !== null && now - t.pendingFlapSince > this.damping.flapWindowMs) {
        t.pendingFlaps = 0;
        t.pendingFlapSince = null;
      }
      t.trueSince ??= now;
      if (now - t.trueSince >= this.raiseAfter(c) || t.pendingFlaps >= this.damping.flappingAfter) this.raise(t, now, out, null);
    }

    for (const [id, t] of this.tracks) {
      if (present.has(id)) continue;
      const a = t.alarm;
      if (a && a.until !== null) {
        if (resolved.has(id) || (a.until === "ack" && a.ackedBy !== null) || (typeof a.until === "number" && now >= a.until)) this.clear(t, now, out);
      } else if (scopes.has(t.cond.scope)) {
        if (a) {
          t.falseSince ??= now;
          if (now - t.falseSince >= this.clearHold(t)) this.clear(t, now, out);
        } else if (t.trueSince !== null) {
          t.trueSince = null;
          t.pendingFlaps++;
          t.pendingFlapSince ??= now;
        }
      }
      if (t.pendingFlapSince !== null && t.trueSince === null && now - t.pendingFlapSince > this.damping.flapWindowMs) {
        t.pendingFlaps = 0;
        t.pendingFlapSince = null;
      }
      if (!t.alarm && t.trueSince === null && t.pendingFlaps === 0 && (t.clearedAt === null || now - t.clearedAt > this.damping.flapWindowMs)) {
        this.tracks.delete(id); // quiet for a flap window: forget it (keeps SEL ids from piling up)
      }
    }
    return { transitions: out, active: this.active() };
  }

  /** Acknowledges the active alarm `id`. Acknowledging twice keeps the first who/when. */
  ack(id: string, who: string, now: number): AckResult {
    const a = this.tracks.get(id)?.alarm;
    if (!a) return { ok: false, error: `no active alarm ${JSON.stringify(id)} on ${this.reporter}` };
    if (a.ackedBy !== null) return { ok: true, alarm: copy(a), transition: null };
    a.ackedBy = who;
    a.ackedAt = now;
    a.state = "acknowledged";
    a.updatedAt = now;
    return { ok: true, alarm: copy(a), transition: { kind: "acked", at: now, alarm: copy(a) } };
  }

  active(): Alarm[] {
    const list: Alarm[] = [];
    for (const t of this.tracks.values()) if (t.alarm) list.push(copy(t.alarm));
    return list.sort(byImportance);
  }

  /** Conditions that hold but are not raised yet (waiting out their raise_after): what an
   *  upgrade's health gate counts as already there, not as new (upgrade/gate.ts baseline). */
  pending(now: number): { id: string; severity: Severity; text: string; forMs: number }[] {
    const out: { id: string; severity: Severity; text: string; forMs: number }[] = [];
    for (const [id, t] of this.tracks) if (!t.alarm && t.trueSince !== null) out.push({ id, severity: t.cond.severity, text: t.cond.text, forMs: now - t.trueSince });
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  get(id: string): Alarm | null {
    const a = this.tracks.get(id)?.alarm;
    return a ? copy(a) : null;
  }

  /**
   * Takes back the alarms this node had active before a restart (history.ts lastActive),
   * so a condition that still holds is not raised again as a new occurrence. They clear
   * as usual once their subject is judged false.
   */
  restore(alarms: Alarm[]): number {
    let n = 0;
    for (const a of alarms) {
      if (a.state === "cleared" || a.reporter !== this.reporter || this.tracks.get(a.id)?.alarm) continue;
      const cond: Condition = { id: a.id, rule: a.rule, severity: a.severity, node: a.node, text: a.text, detail: a.detail ?? undefined, scope: a.id };
      if (a.until !== null) cond.hold = a.until === "ack" ? "ack" : 0;
      this.tracks.set(a.id, { cond, alarm: copy(a), occurrence: a.occurrence, trueSince: null, falseSince: null, flaps: a.flaps, pendingFlaps: 0, pendingFlapSince: null, clearedAt: null, pending: null });
      n++;
    }
    return n;
  }

  private raiseAfter(c: Condition): number {
    return this.damping.perRule[c.rule]?.raiseAfterMs ?? this.damping.raiseAfterMs;
  }

  private clearHold(t: Track): number {
    const base = this.damping.perRule[t.cond.rule]?.clearAfterMs ?? this.damping.clearAfterMs;
    return Math.min(Math.max(this.damping.maxClearAfterMs, base), base * 2 ** Math.min(t.flaps, 30));
  }

  private raise(t: Track, now: number, out: Transition[], until: Alarm["until"]): void {
    const c = t.cond;
    const recent = t.clearedAt !== null && now - t.clearedAt <= this.damping.flapWindowMs;
    t.flaps = Math.max(recent ? t.flaps + 1 : 0, t.pendingFlaps);
    t.occurrence++;
    t.trueSince = null;
    t.falseSince = null;
    t.pendingFlaps = 0;
    t.pendingFlapSince = null;
    t.pending = null;
    t.alarm = {
      id: c.id,
      rule: c.rule,
      severity: c.severity,
      node: c.node,
      reporter: this.reporter,
      text: c.text,
      detail: c.detail ?? null,
      state: "raised",
      occurrence: t.occurrence,
      raisedAt: now,
      updatedAt: now,
      ackedBy: null,
      ackedAt: null,
      clearedAt: null,
      flaps: t.flaps,
      flapping: t.flaps >= this.damping.flappingAfter,
      until,
    };
    out.push({ kind: "raised", at: now, alarm: copy(t.alarm) });
  }

  /** Escalation at once; a lower severity or another text only once it has held for the
   * clear hold (a value hovering at a threshold must not update on every poll). */
  private update(t: Track, now: number, out: Transition[], until: Alarm["until"]): void {
    const a = t.alarm!;
    const c = t.cond;
    a.detail = c.detail ?? null;
    a.flaps = t.flaps;
    a.until = until;
    let change = false;
    if (severityRank(c.severity) < severityRank(a.severity)) change = true;
    else if (c.severity !== a.severity || c.text !== a.text || c.node !== a.node) {
      const p = t.pending;
      if (!p || p.severity !== c.severity || p.text !== c.text || p.node !== c.node) t.pending = { severity: c.severity, text: c.text, node: c.node, since: now };
      else change = now - p.since >= this.clearHold(t);
    } else t.pending = null;
    const flapping = !a.flapping && t.flaps >= this.damping.flappingAfter;
    if (!change && !flapping) return;
    if (change) {
      a.severity = c.severity;
      a.text = c.text;
      a.node = c.node;
      t.pending = null;
    }
    a.flapping ||= flapping;
    a.updatedAt = now;
    out.push({ kind: "updated", at: now, alarm: copy(a) });
  }

  private clear(t: Track, now: number, out: Transition[]): void {
    const a = t.alarm!;
    a.state = "cleared";
    a.clearedAt = now;
    a.updatedAt = now;
    out.push({ kind: "cleared", at: now, alarm: copy(a) });
    t.alarm = null;
    t.clearedAt = now;
    t.falseSince = null;
    t.trueSince = null;
  }
}
