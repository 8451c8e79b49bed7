// The node's MySQL/MariaDB server, over mysql2 (DESIGN §1, §5; issue 4 items 1, 6, 8). The
// driver runs what a Flavour (mysql-flavour.ts) produces and decides nothing: the HA manager
// picks candidates (gtid.ts) and calls promote/replicateFrom/demote/rejoin. One connection,
// opened lazily, calls serialized; every call is bounded (a hung server costs `callTimeoutMs`,
// then the connection is destroyed and the next call reconnects). A failure throws a
// DriverError naming the step and the server. Passwords go to mysql2 as parameters only:
// logs carry the statement text with its `?` placeholders, and messages are redacted.
import mysql from "mysql2/promise";
import type { Logger } from "../env/env.ts";
import { formatGtid, parseGtid, subsetOf, union, withoutGtid } from "./gtid.ts";
import { isAbsolute, join } from "node:path";
import { relayTail, type RelayEvent } from "./relay.ts";
import { readIndex, relayFilesFrom, replayRelayLog, type ReplayTools } from "./relay-replay.ts";
import { CREATE, DIFFERENCES, LIST_TABLES, checksumSql, parseDifferences, parseTables, type Difference } from "./mysql-verify.ts";
import type { Flavour, Sql } from "./mysql-flavour.ts";
import { DriverError, type MysqlStatus } from "./types.ts";

export interface MysqlDriverOptions {
  flavour: Flavour;
  host?: string;
  port?: number;
  /** a local socket instead of host/port */
  socketPath?: string;
  user: string;
  password: string;
  replUser: string;
  replPassword: string;
  /** host pattern of the replication account: '127.%' on loopback, the data subnet in the lab */
  replHost?: string;
  log: Logger;
  /** TCP connect deadline; default 1000 ms */
  connectTimeoutMs?: number;
  /** deadline of each call (connect included); default 2000 ms */
  callTimeoutMs?: number;
  /** rpl_semi_sync_*_timeout on the primary: how long a commit waits for a replica's ACK
   *  before the server falls back to asynchronous replication; default 10000 ms */
  semiSyncTimeoutMs?: number;
  /** the tools that replay a relay log (relay-replay.ts); MariaDB's by default */
  relayReplay?: ReplayTools;
}

export interface MysqlDriverStatus extends MysqlStatus {
  /** replica only: everything it has, applied or still in the relay log (MariaDB Gtid_IO_Pos,
   *  MySQL Retrieved_Gtid_Set, each folded with the executed position): candidate order */
  gtidReceived: string | null;
  /** replica only: changes whenever something arrives from the source (an event moves the read
   *  position; an idle source sends heartbeats every HEARTBEAT_PERIOD_S) */
  recvMark: string | null;
  /** replica only: the receiver thread is on (running or connecting); a detach stops it alone */
  receiverOn: boolean;
  /** this driver's connection to the server: a new one after every reconnect, so a server that
   *  restarted (or could not be reached) is a new incarnation (DbReport.inst) */
  incarnation: string;
}

export interface PromoteResult {
  /** the executed GTID position it was promoted at */
  gtid: string;
  /** ms spent applying the relay log */
  drainMs: number;
  /** an event group at the end of the relay log that never arrived whole, dropped: its GTID */
  discarded: string | null;
}

export interface RelayReplay {
  /** executed GTID position before and after the replay */
  before: string;
  after: string;
  /** relay log files read */
  files: string[];
  ms: number;
}

export type RejoinCheck = { ok: true } | { ok: false; extra: string };

type Conn = mysql.Connection;
interface Lane {
  conn: Conn | null;
  chain: Promise<unknown>;
}
type Row = Record<string, unknown>;
/** One call's use of the connection. Once the call has timed out, `aborted` stops any statement
 *  it has not sent yet: a promote that timed out must not go on when the server wakes up. */
interface S {
  c: Conn;
  token: { aborted: boolean };
}

const ER_NO_SUCH_THREAD = 1094;
/** events read per relay log file when looking for an open group at its end */
const RELAY_SCAN_LIMIT = 100_000;
const ER_LOCK_WAIT_TIMEOUT = 1205;

export class MysqlDriver {
  private readonly f: Flavour;
  private readonly log: Logger;
  private readonly where: string;
  private readonly callTimeoutMs: number;
  /** Two connections, each with its calls in order: actions, and the status reads. A STOP
   *  SLAVE may wait a second for a source that is gone; the reads behind it would give the HA
   *  manager positions older than the fence it waits for. */
  private readonly main: Lane = { conn: null, chain: Promise.resolve() };
  private readonly reads: Lane = { conn: null, chain: Promise.resolve() };
  private semiSyncInstalled = false;
  /** connections made by the status reads: the incarnation's counter */
  private readsConnects = 0;
  private readonly token = Math.random().toString(36).slice(2, 8);
  /** the local binlog state a successful checkCanRejoin saw; rejoin requires it unchanged */
  private checkedState: string | null = null;
  /** the incarnation whose relay log was replayed (status) */
  private relayReplayedFor: string | null = null;
  /** relay log replays done, and failed (metrics, tests) */
  readonly relayReplays: RelayReplay[] = [];
  relayReplayFailures = 0;

  constructor(private readonly opts: MysqlDriverOptions) {
    this.f = opts.flavour;
    this.log = opts.log.child("mysql");
    this.where = opts.socketPath ?? `${opts.host ?? "127.0.0.1"}:${opts.port ?? 3306}`;
    this.callTimeoutMs = opts.callTimeoutMs ?? 2000;
  }

  /** Never throws: an unreachable server is `up: false` with the reason in lastError. A MariaDB
   *  replica found stopped whole (a mysqld restarted with skip-slave-start) first gets what its
   *  relay log still holds replayed (relay-replay.ts), once per incarnation, before its position
   *  is reported: the next START would discard it, and it may hold acknowledged writes. Until that
   *  replay succeeds the server reports down, with the reason. */
  async status(): Promise<MysqlDriverStatus> {
    const s = await this.readStatus();
    if (!s.up || s.role !== "replica" || s.receiverOn || s.sqlRunning || this.f.gtidKind !== "mariadb" || this.relayReplayedFor === s.incarnation) return s;
    try {
      const r = await this.replayRelayLog();
      if (!r) return await this.readStatus(); // started meanwhile (an action of ours)
      this.relayReplayedFor = s.incarnation;
      this.relayReplays.push(r);
      if (r.before !== r.after) this.log.warn("relay log of a replica stopped whole replayed", { server: this.where, ...r });
      return r.before !== r.after ? await this.readStatus() : s;
    } catch (e) {
      this.relayReplayFailures++;
      this.log.error("relay log of a replica stopped whole not replayed: the server stays out until it is", { server: this.where, err: e as Error });
      return { ...s, up: false, lastError: `relay log not replayed: ${(e as Error).message}` };
    }
  }

  /** Replays the relay log of a replica stopped whole (relay-replay.ts). Returns the executed
   *  position before and after, and the files read; null when the replica is not stopped whole
   *  (any more: an action may have started it since it was seen so). */
  async replayRelayLog(): Promise<RelayReplay | null> {
    const t0 = performance.now();
    // one call on the actions' connection, so that no action (a START would purge the relay log
    // being read) runs during the replay
    const timeoutMs = this.opts.relayReplay?.timeoutMs ?? 60_000;
    return this.call("relay log replay", this.main, async (c) => {
      const rep = (await this.rows(c, this.f.showReplicaStatus()))[0];
      const r = rep ? this.f.parseReplicaStatus(rep) : null;
      if (!r || r.receiverOn || r.sqlRunning) return null;
      const v = (await this.rows(c, { sql: "SELECT @@GLOBAL.datadir AS d, @@GLOBAL.relay_log_index AS i", params: [] }))[0] ?? {};
      // relay_log_index is NULL unless set: the index is then the relay log's name + .index
      const datadir = String(v.d ?? ""), index = v.i ? String(v.i) : `${r.relayFile.replace(/\.\d+$/, "")}.index`;
      const before = String((await this.rows(c, this.f.executedGtid()))[0]?.gtid ?? "");
      const binlogBefore = String((await this.rows(c, { sql: "SELECT @@GLOBAL.gtid_binlog_pos AS gtid", params: [] }))[0]?.gtid ?? "");
      const files = relayFilesFrom(await readIndex(isAbsolute(index) ? index : join(datadir, index)), datadir, r.relayFile);
      await replayRelayLog(files, before, { host: this.opts.host, port: this.opts.port, socketPath: this.opts.socketPath, user: this.opts.user, password: this.opts.password }, { ...this.opts.relayReplay, timeoutMs });
      // the replayed transactions went to the binlog with their GTIDs, but gtid_slave_pos (what
      // a START asks the source for, and the executed position of a replica) moves only with the
      // applier: it is set to what the binlog now holds, so nothing is fetched or applied twice
      const binlogPos = { sql: "SELECT @@GLOBAL.gtid_binlog_pos AS gtid", params: [] };
      const binlog = String((await this.rows(c, binlogPos))[0]?.gtid ?? "");
      if (binlog !== binlogBefore) await this.rows(c, { sql: "SET GLOBAL gtid_slave_pos = ?", params: [binlog] });
      const after = String((await this.rows(c, this.f.executedGtid()))[0]?.gtid ?? "");
      return { before, after, files: files.map((f) => f.slice(f.lastIndexOf("/") + 1)), ms: Math.round(performance.now() - t0) };
    }, timeoutMs + 1000);
  }

  private async readStatus(): Promise<MysqlDriverStatus> {
    try {
      return await this.call("status", this.reads, async (c) => {
        const { sql, names } = this.f.statusVariables();
        const vars = new Map((await this.rows(c, sql)).map((r) => [String(r.Variable_name), String(r.Value ?? "")]));
        const on = (n: string) => ["ON", "1"].includes((vars.get(n) ?? "").toUpperCase());
        const readOnly = names.readOnly.every(on);
        const rep = (await this.rows(c, this.f.showReplicaStatus()))[0];
        const r = rep ? this.f.parseReplicaStatus(rep) : null;
        const beats = r ? String((await this.rows(c, this.f.receivedHeartbeats()))[0]?.n ?? "") : "";
        return {
          recvMark: r ? `${r.readPos}/${beats}` : null,
          receiverOn: r?.receiverOn ?? false,
          incarnation: `${this.token}.${this.readsConnects}`,
          up: true, readOnly,
          role: r ? "replica" : readOnly ? "none" : "primary",
          gtidExecuted: vars.get(names.gtidExecuted) ?? "",
          source: r?.source ?? null, ioRunning: r?.ioRunning ?? false, sqlRunning: r?.sqlRunning ?? false,
          lagSeconds: r?.lagSeconds ?? null, lastError: r?.lastError ?? null,
          semiSyncSource: on(names.semiSyncSource), semiSyncReplica: on(names.semiSyncReplica),
          // a replica stopped whole: its relay log goes at the next START (GTID mode), so what it
          // has is what it executed
          gtidReceived: r ? (!r.receiverOn && !r.sqlRunning ? vars.get(names.gtidExecuted) ?? "" : this.received(r.gtidReceived, vars.get(names.gtidExecuted) ?? "")) : null,
        } satisfies MysqlDriverStatus;
      });
    } catch (e) {
      return {
        up: false, readOnly: false, role: "none", gtidExecuted: "", source: null, ioRunning: false, sqlRunning: false,
        lagSeconds: null, lastError: (e as Error).message, semiSyncSource: false, semiSyncReplica: false, gtidReceived: null,
        recvMark: null, receiverOn: false, incarnation: "",
      };
    }
  }

  /** First primary of a fresh cluster: replication account, semi-sync source ON, writable. */
  async bootstrapPrimary(): Promise<void> {
    await this.call("bootstrap primary", this.main, async (c) => {
      await this.installSemiSync(c);
      await this.run(c, this.f.createReplUser(this.opts.replUser, this.opts.replPassword, this.opts.replHost ?? "%"));
      await this.run(c, this.f.semiSyncPrimary(this.opts.semiSyncTimeoutMs ?? 10000));
      await this.run(c, this.f.readOnly(false));
    });
    this.log.info("bootstrapped as primary", { server: this.where });
  }

  /** Replica of host:port with GTID positioning; read-only, semi-sync replica side. */
  async replicateFrom(host: string, port: number): Promise<void> {
    await this.call(`replicate from ${host}:${port}`, this.main, (c) => this.pointAt(c, host, port, []));
    this.log.info("replicating", { server: this.where, source: `${host}:${port}` });
  }

  /**
   * Applies what was received, stops replicating, becomes a writable semi-sync primary. The
   * receiver stops first (the source is fenced or frozen); the applier is started if it was
   * stopped (a detach stops both threads: the relay log is still to be applied, and a wait for
   * it with the applier stopped never ends, as in issue 20). It waits for the last complete
   * transaction received, as long as the applier makes progress (`noProgressMs` without any:
   * a failure). A group at the end of the relay log that never arrived whole (the source died
   * while sending it) was never acknowledged (semi-sync AFTER_SYNC): it is discarded with the
   * relay log, and named in the result.
   */
  async promote(noProgressMs = 5000, opts: { readOnly?: boolean } = {}): Promise<PromoteResult> {
    const t0 = performance.now();
    // Three calls, each bounded on its own (a hung server fails the promotion within a call's
    // timeout, and a call that timed out sends nothing more): stop receiving and find what is
    // complete; apply it, a second at a time, as long as the applier makes progress; become writable.
    const first = await this.call("promote: stop receiving", this.main, async (c) => {
      await this.installSemiSync(c);
      // An applier stopped alone is started while the receiver still runs: with GTID, MariaDB
      // discards the relay log when a START finds both threads stopped (the relay log of a
      // replica stopped whole is lost: issue 20's promotion waited for it for ever).
      const pre = (await this.rows(c, this.f.showReplicaStatus()))[0];
      const p0 = pre ? this.f.parseReplicaStatus(pre) : null;
      if (p0 && !p0.sqlRunning && p0.receiverOn && !p0.lastError) await this.run(c, [this.f.startReplicaSql()]);
      await this.run(c, this.stopping(this.f.stopReplicaIo()));
      const rep = (await this.rows(c, this.f.showReplicaStatus()))[0];
      const r = rep ? this.f.parseReplicaStatus(rep) : null;
      const executed = String((await this.rows(c, this.f.executedGtid()))[0]?.gtid ?? "");
      if (!r || (!r.sqlRunning && !(p0?.receiverOn ?? false))) return { incomplete: null, target: executed, executed };
      const incomplete = await this.incompleteGroup(c, r.relayFile, r.relayPos);
      return { incomplete, target: withoutGtid(this.f.gtidKind, r.gtidReceived, incomplete), executed };
    }, 1000); // STOP may wait a second for a source that is gone (beforeStopReplica)
    const d0 = performance.now();
    let { executed } = first;
    const { target, incomplete } = first;
    let progressAt = performance.now();
    for (;;) {
      const behind = target === "" ? null : subsetOf(this.f.gtidKind, target, executed);
      if (!behind || (behind.ok && behind.value.subset)) break;
      // the relay log holds transactions not applied yet: some may be acknowledged writes
      const step = await this.call("promote: apply the relay log", this.main, async (c) => {
        const w = this.f.waitResult((await this.rows(c, this.f.waitForGtid(target, 1000)))[0]?.r);
        return { w, now: String((await this.rows(c, this.f.executedGtid()))[0]?.gtid ?? "") };
      }, 1000);
      if (step.w === "reached") break;
      if (step.w === "error") throw new DriverError("mysql", `${this.where}: promote: waiting for the relay log up to ${target} failed`);
      if (step.now !== executed) { executed = step.now; progressAt = performance.now(); }
      else if (performance.now() - progressAt > noProgressMs) {
        const st = await this.status();
        throw new DriverError("mysql", `${this.where}: promote: relay log not applied up to ${target}: no progress for ${noProgressMs} ms at ${executed || "-"} (applier ${st.sqlRunning ? "running" : "stopped"}${st.lastError ? `: ${st.lastError}` : ""})`);
      }
    }
    const drainMs = Math.round(performance.now() - d0);
    const gtid = await this.call("promote: become writable", this.main, async (c) => {
      await this.run(c, [this.f.stopReplica(), this.f.resetReplicaAll()]);
      // semi-sync before writable: no commit is acknowledged without a replica's ACK
      await this.run(c, this.f.semiSyncPrimary(this.opts.semiSyncTimeoutMs ?? 10000));
      // a replace under way (ha/local.ts restoreHold): the new primary stays read-only
      if (!opts.readOnly) await this.run(c, this.f.readOnly(false));
      return String((await this.rows(c, this.f.executedGtid()))[0]?.gtid ?? "");
    });
    this.log.info("promoted", { server: this.where, gtid, drainMs, discarded: incomplete, ms: Math.round(performance.now() - t0) });
    return { gtid, drainMs, discarded: incomplete };
  }

  /** The GTID of an event group left open at the end of the relay log (relay.ts), following the
   *  relay log files after `file` (name.000007, name.000008, ...) until one does not exist. */
  private async incompleteGroup(c: S, file: string, pos: number): Promise<string | null> {
    if (!file) return null;
    const rows: RelayEvent[] = [];
    let f = file, from = pos;
    for (let i = 0; i < 20; i++) {
      try {
        rows.push(...((await this.rows(c, this.f.relayLogEvents(f, from, RELAY_SCAN_LIMIT))) as unknown as RelayEvent[]));
      } catch (e) {
        if (i === 0) this.log.warn("relay log not readable: an open group at its end cannot be told", { server: this.where, file: f, err: e as Error });
        break;
      }
      const m = /^(.*\.)(\d+)$/.exec(f);
      if (!m) break;
      f = `${m[1]}${String(Number(m[2]) + 1).padStart(m[2]!.length, "0")}`;
      from = 4; // after the binlog magic
    }
    const t = relayTail(rows);
    if (!t.ok) { this.log.warn("relay log events unreadable", { server: this.where, error: t.error }); return null; }
    return t.incomplete;
  }

  /** Refuses writes: read-only (super_read_only on MySQL), client connections killed, then
   *  semi-sync source OFF. In that order: turning semi-sync off first would release commits
   *  waiting for an ACK as if acknowledged. Returns how many connections were killed. */
  /** Stops receiving from the source (STOP SLAVE IO_THREAD / STOP REPLICA IO_THREAD), keeping and applying what was received. */
  async detach(reason: string): Promise<void> {
    this.log.info("detaching from the source", { server: this.where, reason });
    // The receiver only: the applier goes on with what was received (a promotion waits for it).
    // STOP may wait rpl_semi_sync_slave_kill_conn_timeout (1 s) for a source that is gone:
    // on top of the call's deadline, or a loaded machine turns it into a failed detach
    await this.call("detach", this.main, (c) => this.run(c, this.stopping(this.f.stopReplicaIo())), 2000);
  }

  async demote(reason: string): Promise<number> {
    this.log.warn("demoting", { server: this.where, reason });
    const killed = await this.call("demote", this.main, async (c) => {
      // SET GLOBAL read_only waits for commits in progress (and for table locks) up to
      // lock_wait_timeout; a commit waiting for a semi-sync ACK that will not come (replicas cut
      // off) would hold it for rpl_semi_sync_*_timeout. So: try without waiting; if something
      // holds it, kill the clients (the waiting one gets no OK) and try again.
      let n = 0;
      for (let attempt = 0; ; attempt++) {
        try {
          await this.run(c, [this.f.lockWaitTimeout(attempt === 0 ? 0 : 1), ...this.f.readOnly(true)]);
          break;
        } catch (e) {
          if ((e as { errno?: number }).errno !== ER_LOCK_WAIT_TIMEOUT || attempt >= 3) throw e;
          n += await this.killClients(c);
        }
      }
      n += await this.killClients(c);
      await this.run(c, this.f.semiSyncSourceOff());
      return n;
    });
    this.log.info("demoted", { server: this.where, killed });
    return killed;
  }

  /** Waits until pos is applied here; returns the executed GTID. Throws on timeout. */
  async waitForGtid(pos: string, timeoutMs: number): Promise<string> {
    return this.call(`wait for GTID ${pos}`, this.main, async (c) => {
      const r = await this.rows(c, this.f.waitForGtid(pos, timeoutMs));
      const res = this.f.waitResult(r[0]?.r);
      if (res !== "reached") throw new Error(`${res === "timeout" ? `not reached in ${timeoutMs} ms` : "wait failed"}`);
      return String((await this.rows(c, this.f.executedGtid()))[0]?.gtid ?? "");
    }, timeoutMs);
  }

  /** MariaDB @@gtid_binlog_state (last GTID per domain and server), MySQL @@gtid_executed. */
  async gtidBinlogState(lane: "actions" | "reads" = "actions"): Promise<string> {
    return this.call("read binlog state", lane === "reads" ? this.reads : this.main, async (c) => String((await this.rows(c, this.f.binlogState()))[0]?.gtid ?? ""));
  }

  /** Whether this server may replicate from a primary whose binlog state is given: only when
   *  everything here is there too (gtid.ts documents the rule). Else names the extras. */
  async checkCanRejoin(newPrimaryGtid: string): Promise<RejoinCheck> {
    const local = await this.gtidBinlogState();
    const r = subsetOf(this.f.gtidKind, local, newPrimaryGtid);
    if (!r.ok) throw new DriverError("mysql", `${this.where}: rejoin check: ${r.error}`);
    this.checkedState = r.value.subset ? local : null;
    if (r.value.subset) return { ok: true };
    this.log.warn("diverged: not a subset of the new primary", { server: this.where, extra: r.value.extra });
    return { ok: false, extra: r.value.extra };
  }

  /** An old primary becomes a replica of host:port. Only after checkCanRejoin returned ok, and
   *  only while this server's binlog state is still the one that was checked. */
  async rejoin(host: string, port: number): Promise<void> {
    const checked = this.checkedState;
    this.checkedState = null;
    if (checked === null) throw new DriverError("mysql", `${this.where}: rejoin refused: no successful checkCanRejoin`);
    await this.call(`rejoin ${host}:${port}`, this.main, async (c) => {
      await this.run(c, this.f.readOnly(true));
      const now = String((await this.rows(c, this.f.binlogState()))[0]?.gtid ?? "");
      if (now !== checked) throw new Error(`binlog state changed since the rejoin check: ${checked} -> ${now}`);
      await this.pointAt(c, host, port, this.f.prepareRejoin());
    });
    this.log.info("rejoined as replica", { server: this.where, source: `${host}:${port}` });
  }

  /**
   * The primary's half of a data check (mysql-verify.ts): each application table's checksum in
   * statement format (every replica recomputes it at the same point of the stream), then the
   * primary's own results as values. On its own connection: a check of large tables must not
   * hold up a demote. Tables larger than `maxBytes` are left out (said in the result).
   */
  async verify(run: number, maxBytes: number): Promise<{ tables: number; skipped: number; ms: number }> {
    const t0 = performance.now();
    const o = this.opts;
    const c = await mysql.createConnection({
      ...(o.socketPath ? { socketPath: o.socketPath } : { host: o.host ?? "127.0.0.1", port: o.port ?? 3306 }),
      user: o.user, password: o.password, connectTimeout: o.connectTimeoutMs ?? 1000, supportBigNumbers: true, bigNumberStrings: true, maxPreparedStatements: 1,
    });
    try {
      for (const q of CREATE) await c.query(q);
      const [all] = await c.query(LIST_TABLES, [Number.MAX_SAFE_INTEGER]);
      const [small] = await c.query(LIST_TABLES, [maxBytes]);
      const tables = parseTables(small as Record<string, unknown>[]);
      for (const t of tables) {
        // Both in statement format: the checksum so that each replica computes its own, and the
        // primary's values too, as a statement that sets only master_*: a row event carries the
        // whole row and would overwrite the replica's own cnt and crc with the primary's.
        await c.query("SET SESSION binlog_format = 'STATEMENT'");
        await c.query(checksumSql(t, run));
        const [rows] = await c.query("SELECT cnt, crc FROM bollard.checksums WHERE db = ? AND tbl = ? AND run = ?", [t.db, t.tbl, run]);
        const r = (rows as { cnt?: unknown; crc?: unknown }[])[0];
        if (r) await c.query("UPDATE bollard.checksums SET master_cnt = ?, master_crc = ? WHERE db = ? AND tbl = ? AND run = ?", [String(r.cnt), String(r.crc), t.db, t.tbl, run]);
        await c.query("SET SESSION binlog_format = 'ROW'");
      }
      // keep a few runs: enough to read the latest on every replica
      await c.query("DELETE FROM bollard.checksums WHERE run < ?", [run - 4]);
      return { tables: tables.length, skipped: (all as unknown[]).length - tables.length, ms: Math.round(performance.now() - t0) };
    } catch (e) {
      throw new DriverError("mysql", `${this.where}: data check ${run}: ${this.redact(e)}`, codeOf(e));
    } finally {
      c.destroy();
    }
  }

  /** A replica's half: the tables of the latest check whose data differs from the primary's. */
  async differences(): Promise<Difference[]> {
    return this.call("compare checksums", this.reads, async (c) => {
      try {
        return parseDifferences(await this.rows(c, { sql: DIFFERENCES, params: [] }));
      } catch (e) {
        if ((e as { errno?: number }).errno === 1146 || (e as { errno?: number }).errno === 1049) return []; // no check yet
        throw e;
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.main, this.reads].map(async (l) => {
      const c = l.conn;
      l.conn = null;
      if (!c) return;
      await Promise.race([c.end().catch(() => undefined), sleep(this.callTimeoutMs)]);
      c.destroy();
    }));
  }

  /** A STOP of replication, which must not wait to reach a source that may be gone
   *  (Flavour.beforeStopReplica). */
  private stopping(stop: Sql): Sql[] {
    return [...this.f.beforeStopReplica(), stop];
  }

  /** Received (relay log) folded with executed, so that it is "everything this replica has". */
  private received(received: string, executed: string): string {
    const a = parseGtid(this.f.gtidKind, received), b = parseGtid(this.f.gtidKind, executed);
    return a.ok && b.ok ? formatGtid(union(a.value, b.value)) : received;
  }

  private async pointAt(c: S, host: string, port: number, prepare: Sql[]): Promise<void> {
    await this.installSemiSync(c);
    await this.run(c, this.f.readOnly(true));
    // the old source may be gone (a failover)
    await this.run(c, this.stopping(this.f.stopReplica()));
    // replica side ON before START: the IO thread negotiates semi-sync when it connects
    await this.run(c, this.f.semiSyncReplica());
    await this.run(c, prepare);
    await this.run(c, [this.f.changeSource({ host, port, user: this.opts.replUser, password: this.opts.replPassword })]);
    await this.run(c, [this.f.startReplica()]);
  }

  private async installSemiSync(c: S): Promise<void> {
    const [check, ...installs] = this.f.installSemiSync();
    if (this.semiSyncInstalled || !check) return;
    const have = new Set((await this.rows(c, check)).map((r) => String(r.name)));
    for (const s of installs) if (!have.has(/INSTALL PLUGIN (\w+)/.exec(s.sql)?.[1] ?? "")) await this.run(c, [s]);
    this.semiSyncInstalled = true;
  }

  private async killClients(c: S): Promise<number> {
    let n = 0;
    for (const r of await this.rows(c, this.f.clientConnections([this.opts.replUser]))) {
      if (Number(r.id) === this.reads.conn?.threadId) continue; // our own status reads
      try {
        await this.run(c, [this.f.kill(Number(r.id))]);
        n++;
      } catch (e) {
        if ((e as { errno?: number }).errno !== ER_NO_SUCH_THREAD) throw e; // gone meanwhile
      }
    }
    return n;
  }

  private async run(c: S, stmts: Sql[]): Promise<void> {
    for (const s of stmts) await this.rows(c, s);
  }

  private async rows(c: S, s: Sql): Promise<Row[]> {
    if (c.token.aborted) throw new Error(`timed out before "${s.sql}"`);
    this.log.debug("sql", { server: this.where, sql: s.sql });
    const [rows] = await c.c.query(s.sql, [...s.params]);
    return Array.isArray(rows) ? (rows as Row[]) : [];
  }

  /** Runs fn on the connection, after earlier calls, within callTimeoutMs (+ extraMs). */
  private call<T>(what: string, lane: Lane, fn: (c: S) => Promise<T>, extraMs = 0): Promise<T> {
    const run = async (): Promise<T> => {
      let timer: NodeJS.Timeout | undefined;
      const token = { aborted: false };
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          token.aborted = true;
          reject(new Error(`no answer in ${this.callTimeoutMs + extraMs} ms`));
        }, this.callTimeoutMs + extraMs);
      });
      try {
        const work = this.connect(lane, token).then((c) => fn({ c, token }));
        work.catch(() => undefined); // settles after the deadline when the server hangs
        return await Promise.race([work, deadline]);
      } catch (e) {
        const timedOut = e instanceof Error && e.message.startsWith("no answer in");
        if (timedOut || isFatal(e)) this.drop(lane); // a hung or broken connection is not reused
        throw new DriverError("mysql", `${this.where}: ${what}: ${this.redact(e)}`, codeOf(e));
      } finally {
        clearTimeout(timer);
      }
    };
    const p = lane.chain.then(run, run);
    lane.chain = p.catch(() => undefined);
    return p;
  }

  private async connect(lane: Lane, token: { aborted: boolean }): Promise<Conn> {
    if (lane.conn) return lane.conn;
    const o = this.opts;
    const c = await mysql.createConnection({
      ...(o.socketPath ? { socketPath: o.socketPath } : { host: o.host ?? "127.0.0.1", port: o.port ?? 3306 }),
      user: o.user, password: o.password, connectTimeout: o.connectTimeoutMs ?? 1000,
      multipleStatements: false, supportBigNumbers: true, bigNumberStrings: true,
      // Only query() (the text protocol) is used here, never execute(): no prepared statement
      // to cache. mysql2's default (16000) sizes the cache's arrays up front, ~0.75 MB of heap
      // per connection (seen in a heap snapshot of the idle agent; docs/hardware.md).
      maxPreparedStatements: 1,
    });
    // a server that goes away between calls emits "error" on the idle connection
    c.on("error", () => { if (lane.conn === c) lane.conn = null; });
    if (token.aborted) {
      c.destroy();
      throw new Error("connected after the deadline");
    }
    lane.conn = c;
    if (lane === this.reads) this.readsConnects++;
    return c;
  }

  private drop(lane: Lane): void {
    const c = lane.conn;
    lane.conn = null;
    try { c?.destroy(); } catch { /* already gone */ }
  }

  private redact(e: unknown): string {
    let msg = e instanceof Error ? e.message : String(e);
    for (const secret of [this.opts.password, this.opts.replPassword]) if (secret) msg = msg.split(secret).join("***");
    return msg;
  }
}

function isFatal(e: unknown): boolean {
  return Boolean((e as { fatal?: boolean }).fatal);
}

/** The error's codes only: a mysql2 error carries `sql` with the parameters filled in. */
function codeOf(e: unknown): { code?: string; errno?: number } {
  const x = e as { code?: string; errno?: number };
  return { code: x?.code, errno: x?.errno };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
