// The remote sites (issue 18, docs/site.md): the I/O around ha/site.ts. Every node reads each
// remote's MySQL every `poll_ms` (so every node can show its state, lag and alarms); the acting
// leader alone re-points it after a change of primary, records the primary's position there,
// and commits `site-promoted:<site>` when it finds it promoted. It also says, for the HA
// manager, when MySQL must be held: a remote promoted, or not read yet since the agent started.
import { readFileSync } from "node:fs";
import type { Command } from "../bus/messages.ts";
import type { NodeView } from "../cluster/view.ts";
import type { Config } from "../config/schema.ts";
import type { SiteConfig } from "../config/site-schema.ts";
import type { Logger } from "../env/env.ts";
import { judgeSite, promotedFlag, type RemoteFacts, type SiteJudgement } from "../ha/site.ts";
import { flavourByName } from "../resources/mysql-flavour.ts";
import { SiteMysqlDriver } from "../resources/site-mysql.ts";

export interface SitePrimary {
  holder: string | null;
  writable: boolean;
  /** the holder's executed position (its report's binlog state) */
  gtid: string | null;
}

export interface SiteRuntimeDeps {
  config: Config;
  log: Logger;
  command(cmd: Command, done: (r: { status: string; error?: string }) => void): void;
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
}

/** a re-point that failed is not tried again sooner than this */
const REPOINT_RETRY_MS = 5000;
/** the primary's position is recorded at the remote at most this often */
const RECORD_EVERY_MS = 1000;

interface SiteState {
  c: SiteConfig;
  driver: SiteMysqlDriver;
  facts: RemoteFacts | null;
  readAt: number;
  reading: boolean;
  okOnce: boolean;
  j: SiteJudgement | null;
  busy: boolean;
  repointAt: number;
  /** where the last re-point went: a new target is not made to wait for the back-off */
  repointTo: string;
  recordAt: number;
  flagSent: boolean;
  lastState: string;
  /** actions done: a read started before the last one is stale */
  actSeq: number;
}

export class SiteRuntime {
  private readonly sites: SiteState[];
  private readonly startedAt = performance.now();
  private readonly kind: "mariadb" | "mysql";
  private stopped = false;

  constructor(private readonly d: SiteRuntimeDeps) {
    const m = d.config.ha!.mysql!;
    const flavour = flavourByName(m.flavour)!;
    this.kind = flavour.gtidKind;
    const secret = (f: string) => readFileSync(f, "utf8").trim();
    const repl = secret(m.repl_password_file);
    this.sites = (d.config.sites ?? []).map((c) => ({
      c, facts: null, readAt: -Infinity, reading: false, okOnce: false, j: null, busy: false, repointAt: -Infinity, repointTo: "", recordAt: -Infinity, flagSent: false, lastState: "", actSeq: 0,
      driver: new SiteMysqlDriver({ flavour, host: c.host, port: c.port, user: c.user ?? m.user, password: secret(c.passwordFile ?? m.password_file), replUser: m.repl_user, replPassword: repl, callTimeoutMs: 2000 }),
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled(this.sites.map((s) => s.driver.close()));
  }

  /** One step, from the HA runtime's: read when due, judge, and on the acting leader act. */
  step(now: number, view: NodeView, leading: boolean, primary: SitePrimary): void {
    if (this.stopped) return;
    const cfg = view.committed;
    const holder = cfg.assignments.mysql ?? null;
    const addr = holder ? this.d.config.ha!.ha.nodes[holder]?.address : undefined;
    for (const s of this.sites) {
      if (!s.reading && now - s.readAt >= s.c.pollMs) this.read(s, now);
      s.j = judgeSite({
        site: s.c.name, kind: this.kind, facts: s.facts, flags: cfg.flags, holder: primary.holder,
        holderAddr: addr && holder ? `${addr}:${this.d.config.ha!.mysql!.port}` : null, holderWritable: primary.writable, primaryGtid: primary.gtid,
        lagAlarmS: s.c.lagAlarmS, lagAlarmTrx: s.c.lagAlarmTrx,
      }, leading);
      if (s.j.state !== s.lastState) {
        this.d.event("site", `remote site ${s.c.name}: ${s.lastState || "start"} => ${s.j.state}: ${s.j.why}`, { site: s.c.name, state: s.j.state });
        s.lastState = s.j.state;
      }
      if (!(promotedFlag(s.c.name) in cfg.flags)) s.flagSent = false;
      if (leading) for (const a of s.j.actions) this.act(s, a, now);
    }
  }

  /** Why MySQL must not be placed, failed over or recovered now, or null. */
  hold(now: number): string | null {
    for (const s of this.sites) {
      if (s.j?.hold) return s.j.hold;
      if (!s.okOnce && now - this.startedAt < s.c.contactWaitMs) return `waiting for a first read of remote site ${s.c.name} (up to ${s.c.contactWaitMs} ms after the agent started): it may have been promoted while this room was down`;
    }
    return null;
  }

  snapshot(): SiteView[] {
    return this.sites.map((s) => ({
      site: s.c.name, address: `${s.c.host}:${s.c.port}`, state: s.j?.state ?? "unknown", why: s.j?.why ?? "", lagS: s.j?.lagS ?? null, lagTrx: s.j?.lagTrx ?? null,
      missing: s.j?.missing ?? "", source: s.facts?.source ?? null, executed: s.facts?.executed ?? "", readOnly: s.facts?.readOnly ?? null,
      readAgoMs: Number.isFinite(s.readAt) ? Math.round(performance.now() - s.readAt) : null, lagAlarmS: s.c.lagAlarmS, lagAlarmTrx: s.c.lagAlarmTrx,
    }));
  }

  /** The alarms the acting leader's judgements raise (alarms/rules-site.ts). */
  alarms(): SiteAlarmsInput {
    return { sites: this.sites.map((s) => ({ site: s.c.name, alarms: s.j?.alarms ?? [] })) };
  }

  private read(s: SiteState, now: number): void {
    s.reading = true;
    s.readAt = now;
    const seq = s.actSeq;
    void s.driver.status().then((f) => {
      if (f.up) s.okOnce = true;
      if (seq === s.actSeq) s.facts = f;
      else s.readAt = -Infinity;
    }).finally(() => { s.reading = false; });
  }

  private act(s: SiteState, a: SiteJudgement["actions"][number], now: number): void {
    if (a.do === "flag-promoted") {
      if (s.flagSent) return;
      s.flagSent = true;
      const why = a.why.slice(0, 280);
      this.d.event("site", `remote site ${s.c.name} was promoted (${why}): this room's MySQL is held read-only, for re-cloning`, { site: s.c.name });
      this.d.command({ op: "apply", why: `remote site ${s.c.name} promoted`, flags: { [promotedFlag(s.c.name)]: why } }, (r) => {
        if (r.status !== "ok") { s.flagSent = false; this.d.log.warn("site-promoted flag not committed", { site: s.c.name, error: r.error }); }
      });
      return;
    }
    if (s.busy) return;
    if (a.do === "record") {
      if (now - s.recordAt < RECORD_EVERY_MS) return;
      s.recordAt = now;
      s.busy = true;
      void s.driver.record(a.gtid, a.holder, Date.now()).catch((e) => this.d.log.debug("site record failed", { site: s.c.name, error: (e as Error).message }))
        .finally(() => { s.busy = false; });
      return;
    }
    if (now - s.repointAt < REPOINT_RETRY_MS && s.repointTo === a.to) return;
    s.repointAt = now;
    s.repointTo = a.to;
    s.busy = true;
    const [host, port] = [a.to.replace(/:\d+$/, ""), Number(a.to.replace(/^.*:/, ""))];
    const t0 = performance.now();
    s.driver.repoint(host, port).then(
      () => this.d.event("site", `remote site ${s.c.name} re-pointed to ${a.to} in ${Math.round(performance.now() - t0)} ms (${a.why})`, { site: s.c.name, to: a.to, ms: Math.round(performance.now() - t0), repointed: true }),
      (e) => this.d.event("site", `remote site ${s.c.name}: re-pointing to ${a.to} FAILED: ${(e as Error).message}; tried again in ${REPOINT_RETRY_MS / 1000} s`, { site: s.c.name, failed: true }),
    ).finally(() => {
      s.busy = false;
      s.actSeq += 1;
      s.readAt = -Infinity; // read again at once: the next judgement must see the new source
    });
  }
}

export interface SiteView {
  site: string;
  address: string;
  state: string;
  why: string;
  lagS: number | null;
  lagTrx: number | null;
  missing: string;
  source: string | null;
  executed: string;
  readOnly: boolean | null;
  readAgoMs: number | null;
  lagAlarmS: number;
  lagAlarmTrx: number;
}

export interface SiteAlarmsInput {
  sites: { site: string; alarms: SiteJudgement["alarms"] }[];
}
