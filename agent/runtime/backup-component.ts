// Backups (issue 23) as a component: the backup runtime (backup/runtime.ts), started after the
// data path when the config has a `backup:` section and an `ha:` one, stepped by its own timer
// every STEP_MS. It mounts GET /backup on the control socket (the console's line), and POST
// /backup/event (the steps of `restore --replace`, into the event log).
import type { BackupAlarmInput } from "../alarms/types.ts";
import { BackupRuntime } from "../backup/runtime.ts";
import type { BackupSnapshot } from "../backup/snapshot.ts";
import type { TimerHandle } from "../env/env.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import type { Route } from "./control.ts";

export const STEP_MS = 5000;

export class BackupComponent implements Component {
  readonly name = "backup";
  runtime: BackupRuntime | null = null;
  private timer: TimerHandle | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly routes: Record<string, Route>,
  ) {}

  start(): void {
    const { config: c, log, timers } = this.ctx;
    if (!c.backup || !c.ha) return;
    const { node, events } = this.cluster;
    const rt = new BackupRuntime({
      config: c, view: () => node!.view(), log: log.child("backup"),
      event: (detail, fields) => events.record({ kind: "backup", node: c.cluster.node, term: node!.view().term, detail, fields }),
    });
    this.runtime = rt;
    this.routes["GET /backup"] = async () => ({ code: 200, body: { status: "ok", ...summary(rt.snap) } });
    // `bollard restore mysql --replace` records each of its steps, with what it checked, in this
    // node's event log (kind "restore"); bad input is refused and counted like any control request
    this.routes["POST /backup/event"] = async (_q, raw) => {
      const b = raw as { detail?: unknown; fields?: unknown } | null;
      if (!b || typeof b.detail !== "string" || !b.detail || b.detail.length > 1000 || (b.fields !== undefined && (typeof b.fields !== "object" || b.fields === null || Array.isArray(b.fields) || JSON.stringify(b.fields).length > 4000))) {
        return { code: 400, body: { status: "error", error: "body: expected {detail: string (1..1000), fields?: object (at most 4000 bytes of JSON)}" } };
      }
      events.record({ kind: "restore", node: c.cluster.node, term: node!.view().term, detail: b.detail, fields: b.fields as Record<string, unknown> | undefined });
      return { code: 200, body: { status: "ok" } };
    };
    this.timer = timers.every(STEP_MS, () => void rt.tick());
  }

  /** What the alarm rules judge (alarms/rules-backup.ts). */
  alarmInput(): BackupAlarmInput | null {
    const s = this.runtime?.snap;
    if (!s) return null;
    return { judge: s.problems !== null, judged: s.judged, problems: s.problems ?? [] };
  }

  /** For the status body and the console's line. */
  short(nowMs: number): BackupSummary | null {
    const s = this.runtime?.snap;
    return s ? backupSummary(s, nowMs) : null;
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    delete this.routes["GET /backup"];
    delete this.routes["POST /backup/event"];
    await this.runtime?.stop();
    this.runtime = null;
  }
}

export interface BackupSummary {
  kinds: { kind: string; lastGood: string | null; ageS: number | null; verified: boolean; bad: number }[];
  archive: { node: string; primary: string | null; running: boolean; lagS: number | null; behind: number | null; gap: string | null } | null;
  running: string[];
}

export function backupSummary(s: BackupSnapshot, nowMs: number): BackupSummary {
  const kinds = ["mysql", "redis", "vm"].flatMap((kind) => {
    const mine = s.backups.filter((b) => b.manifest.kind === kind).map((b) => b.manifest);
    if (!mine.length) return [];
    const good = mine.filter((m) => m.state !== "bad");
    const last = good[good.length - 1] ?? null;
    return [{ kind, lastGood: last?.id ?? null, ageS: last ? Math.round((nowMs - Date.parse(last.startedAt)) / 1000) : null, verified: last?.state === "verified", bad: mine.length - good.length }];
  });
  const a = s.archive;
  return { kinds, archive: a ? { node: a.node, primary: a.primary, running: a.running, lagS: a.lagS, behind: a.behind, gap: a.gap } : null, running: s.running };
}

function summary(s: BackupSnapshot) {
  return { backups: s.backups.map((b) => b.manifest), archive: s.archive, jobs: s.jobs, running: s.running, targets: s.targets };
}
