// Failovers as timelines (issue 24 item 3, the events page): the HA manager's events
// (ha/manager.ts) grouped per procedure: "failover" ... started (fields svc, from, kind,
// cause), one "step" per step done (fields svc, step, ms), then "failover" ... done (fields
// svc, to, ms, done) or FAILED. Other timeline events of the same service in between (fences,
// roles) become its notes. Pure: the unit test feeds it event lines.
import type { EventLine } from "../../console/model.ts";

export interface Timeline {
  svc: string;
  title: string;
  start: string;
  steps: { step: string; ms: number; detail: string }[];
  notes: string[];
  result: "running" | "done" | "failed" | "interrupted";
  totalMs: number | null;
}

const NOTE_KINDS = new Set(["fence", "unfence", "role", "held-out"]);

/** Oldest first; events may come from several nodes (the merged stream): sorted by time here. */
export function timelines(events: EventLine[]): Timeline[] {
  const out: Timeline[] = [];
  const open = new Map<string, Timeline>();
  const sorted = [...events].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  for (const e of sorted) {
    const f = e.fields ?? {};
    const svc = typeof f.svc === "string" ? f.svc : null;
    if (e.kind === "failover" && svc && / started: /.test(e.detail)) {
      const t: Timeline = { svc, title: e.detail.split(":")[0]!, start: e.ts, steps: [], notes: [], result: "running", totalMs: null };
      open.set(svc, t);
      out.push(t);
    } else if (e.kind === "step" && svc && open.has(svc)) {
      open.get(svc)!.steps.push({ step: String(f.step ?? "?"), ms: Number(f.ms ?? 0), detail: e.detail });
    } else if (e.kind === "failover" && svc && open.has(svc)) {
      const t = open.get(svc)!;
      if (f.failed) t.result = "failed";
      else if (typeof f.ms === "number") (t.result = "done"), (t.totalMs = f.ms);
      else continue;
      t.notes.push(e.detail);
      open.delete(svc);
    } else if (e.kind === "failover" && / interrupted at step /.test(e.detail)) {
      for (const [s, t] of open) if (e.detail.includes(` of ${s} `)) (t.result = "interrupted"), t.notes.push(e.detail), open.delete(s);
    } else if (NOTE_KINDS.has(e.kind)) {
      for (const t of open.values()) t.notes.push(`${e.ts.slice(11, 23)} ${e.node}: ${e.detail}`);
    }
  }
  return out;
}
