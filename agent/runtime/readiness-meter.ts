// The measured failover steps N+1 readiness predicts from (docs/readiness.md, docs/ha.md
// "Where the time goes"): this node's event log, read at start (events.jsonl, and .1 before
// it) and followed as it grows. The leader that ran a failover has its steps there:
//   failover  "failover of S from X started: ..."                 {svc, kind: "failover"}
//   step      "failover S step NAME done in N ms"                 {svc, step, ms}
//   failover  "failover of S from X to Y done in N ms"            {svc, to, ms, done: true}
//   failover  "failover of S from X FAILED at step NAME: ..."     {failed: true}  (not kept)
//   role      "status change candidate => leader (...; lease usable in N ms)"
// Pure: records in, the last complete failover of each service and the last lease wait out.
import { readFileSync } from "node:fs";
import type { Measured } from "../bus/messages.ts";
import type { ClusterEvent } from "../env/env.ts";

interface Open {
  at: number;
  steps: Record<string, number>;
}

export class FailoverMeter {
  readonly last: Record<string, Measured> = {};
  leaseWaitMs: number | null = null;
  private readonly open = new Map<string, Open>();

  /** One event-log record; `at` its wall ms (the file's ts, or now for a live one). */
  record(e: Pick<ClusterEvent, "kind" | "detail" | "fields">, at: number): void {
    const f = e.fields ?? {};
    const svc = typeof f.svc === "string" ? f.svc : null;
    if (e.kind === "role") {
      const m = /=> leader \(.*lease usable in (\d+) ms\)/.exec(e.detail);
      if (m) this.leaseWaitMs = Number(m[1]);
      return;
    }
    if (!svc) return;
    if (e.kind === "failover" && /^failover of \S+ from \S+ started/.test(e.detail)) {
      this.open.set(svc, { at, steps: {} });
    } else if (e.kind === "step" && e.detail.startsWith(`failover ${svc} step `)) {
      const o = this.open.get(svc);
      if (o && typeof f.step === "string" && typeof f.ms === "number" && f.ms >= 0) o.steps[f.step] = f.ms;
    } else if (e.kind === "failover" && f.done === true) {
      const o = this.open.get(svc);
      this.open.delete(svc);
      if (o && typeof f.ms === "number" && f.ms >= 0) this.last[svc] = { at, totalMs: f.ms, steps: o.steps };
    } else if (e.kind === "failover" && (f.failed === true || / interrupted at step /.test(e.detail))) {
      this.open.delete(svc);
    }
  }

  /** Replays an event log's lines (JSON, with `ts`); a line that is not a record is skipped. */
  replay(text: string): void {
    for (const line of text.split("\n")) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as ClusterEvent & { ts?: string };
        const at = Date.parse(r.ts ?? "");
        if (typeof r.kind === "string" && typeof r.detail === "string" && Number.isFinite(at)) this.record(r, at);
      } catch { /* a torn last line */ }
    }
  }

  /** Reads `file.1` then `file` (the log rotates at ~5 MB: env/real.ts EventLog). */
  replayFiles(file: string): void {
    for (const f of [`${file}.1`, file]) {
      try {
        this.replay(readFileSync(f, "utf8"));
      } catch { /* none yet */ }
    }
  }
}
