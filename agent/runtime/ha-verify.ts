// When the data checks of resources/mysql-verify.ts run (issue 22 item 5). On the writable
// primary: AFTER_CHANGE_MS after it became the primary, after a replica newly replicates from it
// (a failover, a switchover, a rejoin), then every mysql.verify_every_ms. On a replica: every
// COMPARE_EVERY_MS it reads the latest check's differences; one that differs is diverged: its
// agent holds it out and stops its replication (ha/local.ts), a CRITICAL alarm says so.
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import type { DbFacts } from "../ha/local.ts";
import { describe } from "../resources/mysql-verify.ts";
import type { MysqlDriver } from "../resources/mysql.ts";

/** a check waits this long after a change of the replica set, for the replicas to catch up */
export const AFTER_CHANGE_MS = 10_000;
const COMPARE_EVERY_MS = 5000;

export class DataCheck {
  private nextAt = Infinity;
  private wasPrimary = false;
  private replicas = new Set<string>();
  private running = false;
  private comparedAt = -Infinity;
  /** this replica's data differs from the primary's: what differs (sticky until re-cloned) */
  private diverged: string | null = null;

  constructor(
    private readonly db: MysqlDriver,
    private readonly c: NonNullable<NonNullable<Config["ha"]>["mysql"]>,
    private readonly self: string,
    private readonly event: (kind: string, detail: string) => void,
    private readonly log: Logger,
    private readonly onDiverged: (what: string) => void,
  ) {}

  /** One step: `replicas` are the peers whose reports say they replicate from this node. */
  step(now: number, f: DbFacts | null, replicas: string[]): void {
    if (!f?.up || this.running) return;
    const primary = f.role === "primary" && f.writable;
    if (primary) {
      const grown = replicas.some((n) => !this.replicas.has(n));
      if (!this.wasPrimary || grown) this.nextAt = Math.min(this.nextAt, now + AFTER_CHANGE_MS);
      this.replicas = new Set(replicas);
      if (now >= this.nextAt) void this.check(now);
    } else {
      this.nextAt = Infinity;
      this.replicas.clear();
      if (f.role === "replica" && f.source && !this.diverged && now - this.comparedAt >= COMPARE_EVERY_MS) void this.compare(now, f.source);
    }
    this.wasPrimary = primary;
  }

  private async check(now: number): Promise<void> {
    this.running = true;
    const run = Date.now();
    try {
      const r = await this.db.verify(run, this.c.verify_max_table_mb * 1024 * 1024);
      this.event("verify", `data check ${run} written on ${this.self} (the primary): ${r.tables} tables in ${r.ms} ms${r.skipped ? `, ${r.skipped} larger than ${this.c.verify_max_table_mb} MB left out` : ""}; every replica compares its own`);
      this.nextAt = now + this.c.verify_every_ms;
    } catch (e) {
      this.log.warn("data check failed", { err: e as Error });
      this.nextAt = now + AFTER_CHANGE_MS;
    } finally {
      this.running = false;
    }
  }

  private async compare(now: number, source: string): Promise<void> {
    this.running = true;
    this.comparedAt = now;
    try {
      const d = await this.db.differences();
      if (d.length) {
        this.diverged = describe(d);
        this.onDiverged(this.diverged);
        this.event("verify", `DATA DIFFERS: mysql on ${this.self} holds other data than ${source}, the primary: ${this.diverged}`);
      }
    } catch (e) {
      this.log.debug("reading the data check failed", { err: e as Error });
    } finally {
      this.running = false;
    }
  }
}
