// MysqlDriver against three real MariaDB 10.11 servers (issue 4 items 1, 5-9; DESIGN §5).
// Each suite gets a fresh cluster: node1 bootstrapped primary, node2/node3 replicas. A writer
// inserts ids through an application account and records each acknowledged one; after a
// failover every acknowledged id must be on the new primary. Timings are printed, not asserted.
import mysql from "mysql2/promise";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { mostAdvanced, parseMariadb } from "../../agent/resources/gtid.ts";
import { MysqlDriver } from "../../agent/resources/mysql.ts";
import { mariadb } from "../../agent/resources/mysql-flavour.ts";
import { DriverError } from "../../agent/resources/types.ts";
import { type MariadbHarness, MariadbTemplate, startMariadb } from "./mariadb-harness.ts";

const REPL_PW = "repl-Secret-42";
/** How a node that may have been primary starts: read-only, and in the semi-sync replica role
 *  so that crash recovery drops transactions no replica acknowledged (MariaDB 10.6+, MDEV-21117:
 *  measured here, rpl_semi_sync_slave_enabled alone does not truncate; init_rpl_role=SLAVE does). */
const RECOVER_AS_REPLICA = ["--read-only=1", "--rpl-semi-sync-slave-enabled=1", "--init-rpl-role=SLAVE"];
const APP = { user: "app", password: "app-Secret-42" };
const lines: string[] = [];
/** one installed datadir, copied for every suite's cluster; removed when the process exits */
let template: MariadbTemplate | null = null;
const ms = (t0: number) => Math.round(performance.now() - t0);
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

function logger(ns = "test"): Logger {
  const put = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    const line = JSON.stringify({ level, ns, msg, ...fields });
    lines.push(line);
    if (level === "error") console.log(line);
  };
  return { debug: put("debug"), info: put("info"), warn: put("warn"), error: put("error"), child: (c) => logger(`${ns}.${c}`) };
}

interface Ctx {
  h: MariadbHarness;
  d: MysqlDriver[];
}

/** uvu drops an error thrown by a before hook without a word: print it, then fail. */
async function cluster(ctx: Ctx): Promise<void> {
  try {
    await setup(ctx);
  } catch (e) {
    console.log(`  cluster setup failed: ${(e as Error).stack ?? e}`);
    for (const i of [1, 2, 3]) if (ctx.h?.servers[i - 1]) console.log(`  node${i} error log tail:\n${ctx.h.errorLog(i).slice(-600)}`);
    throw e;
  }
}

async function setup(ctx: Ctx): Promise<void> {
  const t0 = performance.now();
  if (!template) {
    template = await MariadbTemplate.create();
    process.on("exit", () => template?.remove());
    console.log(`  mariadb-install-db once for every suite: ${Math.round(template.installMs)} ms`);
  }
  ctx.h = await startMariadb({ nodes: 3, template });
  const { h } = ctx;
  ctx.d = h.servers.map((s) => new MysqlDriver({
    flavour: mariadb, host: s.host, port: s.port, user: h.admin.user, password: h.admin.password,
    replUser: "repl", replPassword: REPL_PW, replHost: "127.%", log: logger(`node${s.index}`), callTimeoutMs: 2000,
  }));
  const t1 = performance.now();
  await ctx.d[0]!.bootstrapPrimary();
  const s1 = h.server(1);
  await Promise.all([ctx.d[1]!.replicateFrom(s1.host, s1.port), ctx.d[2]!.replicateFrom(s1.host, s1.port)]);
  // after the replicas: with semi-sync on and no replica connected, a commit waits
  // rpl_semi_sync_master_timeout (10 s) before the primary falls back to asynchronous
  await h.sql(1, [
    "CREATE DATABASE fms;",
    "CREATE TABLE fms.acks (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;",
    `CREATE USER '${APP.user}'@'127.%' IDENTIFIED BY '${APP.password}';`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON fms.* TO '${APP.user}'@'127.%';`,
  ].join("\n"));
  const pos = (await ctx.d[0]!.status()).gtidExecuted;
  await Promise.all([ctx.d[1]!.waitForGtid(pos, 5000), ctx.d[2]!.waitForGtid(pos, 5000)]);
  const ph = Object.entries(h.phases).map(([k, v]) => `${k.replace("Ms", "")} ${Math.round(v)}`).join(", ");
  console.log(`  cluster: 3 servers up in ${Math.round(h.startMs)} ms (${ph}), bootstrap + 2 replicas in ${ms(t1)} ms (total ${ms(t0)} ms)`);
}

async function teardown(ctx: Ctx): Promise<void> {
  await Promise.all((ctx.d ?? []).map((d) => d.close()));
  await ctx.h?.stop();
  const secrets = [REPL_PW, APP.password, ctx.h?.admin.password].filter(Boolean) as string[];
  const leaked = lines.filter((l) => secrets.some((s) => l.includes(s)));
  assert.equal(leaked, [], "no password in any log line");
}

function app(h: MariadbHarness, i: number): Promise<mysql.Connection> {
  const s = h.server(i);
  return mysql.createConnection({ host: s.host, port: s.port, ...APP, database: "fms", connectTimeout: 1000 });
}

async function ids(h: MariadbHarness, i: number): Promise<Set<number>> {
  const out = await h.sql(i, "SELECT id FROM fms.acks;");
  return new Set(out.split("\n").filter(Boolean).map(Number));
}

/** Inserts 1, 2, 3, ... into whichever server target() names; records acknowledged ids. */
class Writer {
  acked: { id: number; at: number }[] = [];
  failures = 0;
  private next = 1;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  constructor(private readonly h: MariadbHarness, public target: number) {}

  start(): this {
    this.done = this.loop();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  /** Largest gap between consecutive acknowledgements in [from, to]. */
  maxGap(from: number, to: number): number {
    const at = this.acked.map((a) => a.at).filter((t) => t >= from - 5000 && t <= to + 5000);
    return at.slice(1).reduce((g, t, i) => Math.max(g, t - at[i]!), 0);
  }

  async until(n: number, timeoutMs = 10000): Promise<void> {
    const want = this.acked.length + n, t0 = performance.now();
    while (this.acked.length < want) {
      if (performance.now() - t0 > timeoutMs) throw new Error(`writer: ${this.acked.length}/${want} acks in ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  private async loop(): Promise<void> {
    let c: mysql.Connection | null = null, on = 0;
    while (!this.stopped) {
      try {
        if (!c || on !== this.target) {
          c?.destroy();
          on = this.target;
          c = null;
          c = await app(this.h, on);
          c.on("error", () => undefined);
        }
        const id = this.next++;
        await c.query({ sql: "INSERT INTO acks (id) VALUES (?)", timeout: 3000 }, [id]);
        this.acked.push({ id, at: performance.now() });
      } catch {
        this.failures++;
        c?.destroy();
        c = null;
        await sleep(5);
      }
    }
    c?.destroy();
  }
}

// --- replication and status -------------------------------------------------------------

const Repl = suite<Ctx>("mysql: bootstrap, replication, status", {} as Ctx);
Repl.before(cluster);
Repl.after(teardown);

Repl("writes on the primary reach both replicas (GTID wait)", async ({ h, d }) => {
  const c = await app(h, 1);
  for (let i = 1; i <= 100; i++) await c.query("INSERT INTO acks (id) VALUES (?)", [i]);
  c.destroy();
  const pos = (await d[0]!.status()).gtidExecuted;
  const t0 = performance.now();
  const [g2, g3] = await Promise.all([d[1]!.waitForGtid(pos, 2000), d[2]!.waitForGtid(pos, 2000)]);
  console.log(`  primary at ${pos}; replicas caught up in ${ms(t0)} ms (${g2}, ${g3})`);
  assert.is(g2, pos);
  assert.is(g3, pos);
  for (const i of [2, 3]) assert.is((await ids(h, i)).size, 100);
});

Repl("status: roles, lag, read-only, semi-sync source only on the primary", async ({ h, d }) => {
  const [p, r2, r3] = await Promise.all(d.map((x) => x.status()));
  assert.equal([p!.role, p!.readOnly, p!.semiSyncSource, p!.semiSyncReplica, p!.source], ["primary", false, true, false, null]);
  for (const r of [r2!, r3!]) {
    assert.equal([r.up, r.role, r.readOnly, r.semiSyncSource, r.semiSyncReplica], [true, "replica", true, false, true]);
    assert.equal([r.ioRunning, r.sqlRunning, r.lagSeconds, r.lastError], [true, true, 0, null]);
    assert.is(r.source, `${h.server(1).host}:${h.server(1).port}`);
    assert.is(r.gtidExecuted, p!.gtidExecuted);
  }
  // both replicas negotiated semi-sync with the primary (AFTER_SYNC)
  const st = await h.sql(1, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'; SELECT @@rpl_semi_sync_master_wait_point;");
  assert.match(st, /Rpl_semi_sync_master_clients\t2/);
  assert.match(st, /AFTER_SYNC/);
});

Repl("a hung server costs the call timeout, not the agent; a timed-out promote does not go on", async ({ h, d }) => {
  const pid = h.server(3).pid!;
  assert.is((await d[2]!.status()).up, true); // the driver holds an open connection
  process.kill(pid, "SIGSTOP");
  try {
    let t0 = performance.now();
    const err = await d[2]!.promote(500).then(() => null, (e: unknown) => e);
    const promoteMs = ms(t0);
    t0 = performance.now();
    const s = await d[2]!.status();
    const statusMs = ms(t0);
    console.log(`  SIGSTOPped server: promote() failed in ${promoteMs} ms (${(err as Error).message}); status() up=${s.up} in ${statusMs} ms`);
    assert.ok(err instanceof DriverError, String(err));
    assert.is(s.up, false);
    assert.ok(promoteMs < 4000 && statusMs < 3000);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  await sleep(200);
  const s = await d[2]!.status();
  console.log(`  after SIGCONT: role ${s.role}, read-only ${s.readOnly}, IO thread ${s.ioRunning ? "running" : "stopped"} (a statement already sent runs on wake-up)`);
  assert.equal([s.up, s.role, s.readOnly, s.semiSyncSource], [true, "replica", true, false], "not promoted");
});

Repl.run();

// --- unplanned failover -----------------------------------------------------------------

const Crash = suite<Ctx>("mysql: kill -9 of the primary under a writer", {} as Ctx);
Crash.before(cluster);
Crash.after(teardown);

Crash("promote the most advanced replica, re-point the other: no acknowledged write lost; old primary rejoins", async ({ h, d }) => {
  const w = new Writer(h, 1).start();
  await w.until(200);
  const yes = await h.sql(1, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx';");
  const tKill = performance.now();
  await h.kill9(1);
  const killedMs = ms(tKill);

  // pickCandidate: the most advanced received GTID among reachable replicas
  const st = await Promise.all([d[1]!.status(), d[2]!.status()]);
  const sets = st.map((s) => parseMariadb(s.gtidReceived));
  assert.ok(sets.every((s) => s.ok));
  const best = mostAdvanced(sets.map((s) => (s.ok ? s.value : { kind: "mariadb" as const, gtids: [] })));
  const [cand, other] = best === 0 ? [2, 3] : [3, 2];
  let t0 = performance.now();
  const at = (await d[cand - 1]!.promote()).gtid;
  const promoteMs = ms(t0);
  t0 = performance.now();
  await d[other - 1]!.replicateFrom(h.server(cand).host, h.server(cand).port);
  const repointMs = ms(t0);
  w.target = cand; // the portal follows
  await w.until(100);
  const resumedMs = Math.round(w.acked.find((a) => a.at > tKill)!.at - tKill);
  await w.stop();

  const present = await ids(h, cand);
  const lost = w.acked.filter((a) => !present.has(a.id));
  console.log(
    `  ${yes.trim().replace("\t", "=")}; received: node2 ${st[0]!.gtidReceived} node3 ${st[1]!.gtidReceived} -> node${cand}\n` +
      `  kill ${killedMs} ms, promote ${promoteMs} ms (at ${at}), re-point ${repointMs} ms, first acknowledged write on the new primary ${resumedMs} ms after the kill\n` +
      `  acknowledged ${w.acked.length}, present on new primary ${w.acked.length - lost.length}, lost ${lost.length}, failed attempts ${w.failures}`,
  );
  assert.equal(lost, []);
  const s = await d[other - 1]!.status();
  assert.equal([s.role, s.source, s.ioRunning, s.sqlRunning], ["replica", `${h.server(cand).host}:${h.server(cand).port}`, true, true]);

  // the old primary comes back read-only, in the semi-sync replica role: its crash recovery
  // (MDEV-21117) rolls back and truncates a binlog tail that no replica acknowledged
  const restartMs = await h.restart(1, RECOVER_AS_REPLICA);
  const truncated = /truncated binlog/.test(h.errorLog(1));
  const check = await d[0]!.checkCanRejoin(await d[cand - 1]!.gtidBinlogState());
  console.log(`  old primary restarted in ${Math.round(restartMs)} ms (unacknowledged tail truncated: ${truncated}); binlog state ${await d[0]!.gtidBinlogState()}; rejoin check ${JSON.stringify(check)}`);
  assert.equal(check, { ok: true });
  t0 = performance.now();
  await d[0]!.rejoin(h.server(cand).host, h.server(cand).port);
  const pos = (await d[cand - 1]!.status()).gtidExecuted;
  await d[0]!.waitForGtid(pos, 3000);
  console.log(`  old primary rejoined and caught up to ${pos} in ${ms(t0)} ms`);
  const r = await d[0]!.status();
  assert.equal([r.role, r.readOnly, r.semiSyncSource, r.semiSyncReplica, r.ioRunning, r.sqlRunning], ["replica", true, false, true, true, true]);
  assert.is((await ids(h, 1)).size, present.size);
});

Crash.run();

const Tail = suite<Ctx>("mysql: a commit no replica acknowledged", {} as Ctx);
Tail.before(cluster);
Tail.after(teardown);

Tail("is not acknowledged to the client, and crash recovery removes it from the old primary", async ({ h, d }) => {
  for (const i of [2, 3]) await h.sql(i, "STOP SLAVE IO_THREAD;"); // no replica can ACK now
  await h.sql(1, "SET GLOBAL rpl_semi_sync_master_timeout = 60000;");
  const before = await d[0]!.gtidBinlogState();
  const c = await app(h, 1);
  c.on("error", () => undefined);
  const insert = c.query("INSERT INTO acks (id) VALUES (1)").then(() => "acknowledged", (e: Error) => e.message);
  await sleep(300);
  const waiting = await h.sql(1, "SELECT @@gtid_binlog_state; SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_wait_sessions';");
  await h.kill9(1);
  const client = await insert;
  c.destroy();
  const restartMs = await h.restart(1, RECOVER_AS_REPLICA);
  const after = await d[0]!.gtidBinlogState();
  console.log(`  before ${before}; waiting for ACK: ${waiting.trim().replace(/\s+/g, " ")}; client saw "${client}"`);
  console.log(`  restarted in ${Math.round(restartMs)} ms; binlog state ${after}; rows ${(await ids(h, 1)).size}`);
  assert.is.not(client, "acknowledged");
  assert.is(after, before, "the unacknowledged transaction was truncated");
  assert.is((await ids(h, 1)).size, 0);
  await d[1]!.promote(1000);
  assert.equal(await d[0]!.checkCanRejoin(await d[1]!.gtidBinlogState()), { ok: true });
});

Tail.run();

// --- fencing ----------------------------------------------------------------------------

const Demote = suite<Ctx>("mysql: demote", {} as Ctx);
Demote.before(cluster);
Demote.after(teardown);

Demote("refuses writes (read-only) and kills open client connections, keeps replication", async ({ h, d }) => {
  const open = await app(h, 1);
  open.on("error", () => undefined);
  await open.query("INSERT INTO acks (id) VALUES (1)");
  const t0 = performance.now();
  const killed = await d[0]!.demote("test: quorum lost");
  const demoteMs = ms(t0);
  const oldConn = await open.query("INSERT INTO acks (id) VALUES (2)").then(() => "written", (e: Error) => e.message);
  const fresh = await app(h, 1);
  const refused = await fresh.query("INSERT INTO acks (id) VALUES (3)").then(() => "written", (e: Error) => e.message);
  fresh.destroy();
  open.destroy();
  console.log(`  demote in ${demoteMs} ms, killed ${killed}; open connection: "${oldConn}"; new connection: "${refused}"`);
  assert.ok(killed >= 1);
  assert.is.not(oldConn, "written");
  assert.match(refused, /read-only/);
  const s = await d[0]!.status();
  assert.equal([s.role, s.readOnly, s.semiSyncSource], ["none", true, false]);
  const r = await d[1]!.status();
  assert.ok(r.ioRunning, "replication connections are not killed");
});

Demote("self-fence while a commit waits for an ACK (replicas cut off): bounded, never acknowledged", async ({ h, d }) => {
  await d[0]!.bootstrapPrimary(); // writable again after the test above
  for (const i of [2, 3]) await h.sql(i, "STOP SLAVE IO_THREAD;");
  await h.sql(1, "SET GLOBAL rpl_semi_sync_master_timeout = 60000;");
  const c = await app(h, 1);
  c.on("error", () => undefined);
  const insert = c.query("INSERT INTO acks (id) VALUES (10)").then(() => "acknowledged", (e: Error) => e.message);
  await sleep(200);
  const t0 = performance.now();
  const killed = await d[0]!.demote("test: quorum lost while partitioned");
  const demoteMs = ms(t0);
  const client = await insert;
  c.destroy();
  console.log(`  demote with a commit waiting for an ACK: ${demoteMs} ms, killed ${killed}; the waiting client saw "${client}"`);
  assert.is.not(client, "acknowledged");
  const s = await d[0]!.status();
  assert.equal([s.readOnly, s.semiSyncSource], [true, false]);
  // the killed session's transaction was in the binlog already: it stays, unacknowledged, and
  // makes this server diverged from the replicas (held out, never re-attached silently)
  const check = await d[0]!.checkCanRejoin(await d[1]!.gtidBinlogState());
  console.log(`  fenced primary against a replica: ${JSON.stringify(check)}`);
  assert.is(check.ok, false);
});

Demote.run();

// --- divergence -------------------------------------------------------------------------

const Diverged = suite<Ctx>("mysql: a diverged old primary is held out", {} as Ctx);
Diverged.before(cluster);
Diverged.after(teardown);

Diverged("checkCanRejoin names the extra transactions; rejoin refuses", async ({ h, d }) => {
  const c = await app(h, 1);
  for (let i = 1; i <= 10; i++) await c.query("INSERT INTO acks (id) VALUES (?)", [i]);
  c.destroy();
  const pos = (await d[0]!.status()).gtidExecuted;
  await d[1]!.waitForGtid(pos, 2000);
  const seq = BigInt(pos.split("-")[2]!);
  await h.kill9(1);
  await d[1]!.promote();
  await d[2]!.replicateFrom(h.server(2).host, h.server(2).port);
  const c2 = await app(h, 2);
  await c2.query("INSERT INTO acks (id) VALUES (100)");
  c2.destroy();
  // the old primary comes back isolated and someone writes on it
  await h.restart(1, ["--read-only=1"]);
  await h.sql(1, "SET GLOBAL read_only = 0; INSERT INTO fms.acks (id) VALUES (999); INSERT INTO fms.acks (id) VALUES (998);");
  const state = await d[1]!.gtidBinlogState();
  const check = await d[0]!.checkCanRejoin(state);
  console.log(`  new primary ${state}; old primary ${await d[0]!.gtidBinlogState()}: ${JSON.stringify(check)}`);
  assert.equal(check, { ok: false, extra: `0-1-${seq + 1n}..0-1-${seq + 2n}` });
  const err = await d[0]!.rejoin(h.server(2).host, h.server(2).port).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof DriverError);
  assert.match((err as Error).message, /no successful checkCanRejoin/);
  assert.is((await d[0]!.status()).role, "primary", "not re-attached");
});

Diverged.run();

// --- planned switchover -----------------------------------------------------------------

const Switch = suite<Ctx>("mysql: planned switchover under a writer", {} as Ctx);
Switch.before(cluster);
Switch.after(teardown);

Switch("read-only, catch up to the exact GTID, promote: no loss, a short write pause", async ({ h, d }) => {
  const w = new Writer(h, 1).start();
  await w.until(200);
  const t0 = performance.now();
  const killed = await d[0]!.demote("switchover to node2");
  const tDemote = ms(t0);
  const pos = (await d[0]!.status()).gtidExecuted;
  let t1 = performance.now();
  await d[1]!.waitForGtid(pos, 2000);
  const tCatch = ms(t1);
  t1 = performance.now();
  await d[1]!.promote();
  const tPromote = ms(t1);
  w.target = 2;
  const tSwitched = performance.now();
  t1 = performance.now();
  await d[2]!.replicateFrom(h.server(2).host, h.server(2).port);
  const tRepoint = ms(t1);
  const check = await d[0]!.checkCanRejoin(await d[1]!.gtidBinlogState());
  assert.equal(check, { ok: true });
  await d[0]!.rejoin(h.server(2).host, h.server(2).port);
  await w.until(100);
  await w.stop();
  const present = await ids(h, 2);
  const lost = w.acked.filter((a) => !present.has(a.id));
  const pause = w.maxGap(t0, tSwitched);
  console.log(
    `  demote ${tDemote} ms (killed ${killed}), catch-up to ${pos} ${tCatch} ms, promote ${tPromote} ms, re-point ${tRepoint} ms\n` +
      `  write pause ${Math.round(pause)} ms; acknowledged ${w.acked.length}, lost ${lost.length}`,
  );
  assert.equal(lost, []);
  const s = await d[0]!.status();
  assert.equal([s.role, s.readOnly, s.semiSyncSource], ["replica", true, false]);
});

Switch.run();
