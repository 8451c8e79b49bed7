// The web console's audit log (issue 24 item 2): every login, logout and action, who, what,
// from which address, when and with what result. Kept with the alarm history
// (<state_dir>/alarms/audit.jsonl, rotated at 5 MB to audit.jsonl.1) and recorded as an
// event of kind "audit" too, so that every node's audit reaches any node through the events
// fetch of the bus (the web's audit page, `bollard events --node all`).
import { appendFileSync, existsSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ClusterEvent, Logger } from "../env/env.ts";

export interface AuditRecord {
  ts: string;
  node: string;
  /** the account, or what was typed as one for a failed login */
  user: string;
  role: string | null;
  /** the client's address */
  from: string;
  /** "login", "logout", "switchover mysql", "alarm ack <id>", "user add bob", ... */
  what: string;
  result: "ok" | "refused" | "failed";
  detail?: string;
}

export const AUDIT_FILE = "audit.jsonl";
const MAX_BYTES = 5 * 1024 * 1024;

export class AuditLog {
  readonly file: string;
  private failing = false;

  constructor(
    historyDir: string,
    private readonly node: string,
    private readonly event: (e: ClusterEvent) => void,
    private readonly log: Logger,
    private readonly wall: () => number = Date.now,
  ) {
    this.file = join(historyDir, AUDIT_FILE);
  }

  record(r: Omit<AuditRecord, "ts" | "node">): AuditRecord {
    const rec: AuditRecord = { ts: new Date(this.wall()).toISOString(), node: this.node, ...r };
    const line = JSON.stringify(rec) + "\n";
    try {
      if (existsSync(this.file) && statSync(this.file).size + line.length > MAX_BYTES) renameSync(this.file, `${this.file}.1`);
      appendFileSync(this.file, line, { mode: 0o640 });
      this.failing = false;
    } catch (e) {
      if (!this.failing) this.log.error("cannot write the audit log", { file: this.file, err: e as Error });
      this.failing = true;
    }
    const text = `${rec.user}${rec.role ? ` (${rec.role})` : ""} from ${rec.from}: ${rec.what}: ${rec.result}${rec.detail ? `: ${rec.detail}` : ""}`;
    this.event({ kind: "audit", node: this.node, term: 0, detail: text.slice(0, 500), fields: { user: rec.user, from: rec.from, what: rec.what, result: rec.result } });
    return rec;
  }

  /** The last `n` records of this node, oldest first. */
  recent(n: number): AuditRecord[] {
    try {
      const lines = readFileSync(this.file, "utf8").split("\n").filter(Boolean).slice(-n);
      return lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as AuditRecord];
        } catch {
          return [];
        }
      });
    } catch {
      return [];
    }
  }
}
