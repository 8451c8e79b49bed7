// The promotion's drain against real MariaDB servers (issue 20 item 2), and the data check
// (issue 22 item 5). A TCP proxy between a replica and its primary cuts the stream right before a
// transaction's last event (its Xid), so that the replica holds an incomplete event group at the
// end of its relay log, as when the primary dies while sending it; another replica is stopped
// with its applier stopped too, as a detach used to leave it.
import { connect, createServer, type Server, type Socket } from "node:net";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { mariadb } from "../../agent/resources/mysql-flavour.ts";
import { MysqlDriver } from "../../agent/resources/mysql.ts";
import { MariadbTemplate, startMariadb, type MariadbHarness } from "./mariadb-harness.ts";

const quiet = (): Logger => ({ debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m, f) => console.log(m, f), child: () => quiet() });

interface Ctx {
  h: MariadbHarness;
  d: MysqlDriver[];
  proxy: { server: Server; port: number; socks: Socket[]; mode: "pass" | "cut-before-xid" | "dark" };
}

const P = suite<Ctx>("mysql promotion: what the relay log holds");
let template: MariadbTemplate;

P.before(async () => { template = await MariadbTemplate.create(); });
P.after(() => template.remove());

P.before.each(async (ctx) => {
  ctx.h = await startMariadb({ nodes: 3, template });
  const admin = ctx.h.admin;
  ctx.d = ctx.h.servers.map((s) => new MysqlDriver({ flavour: mariadb, host: s.host, port: s.port, user: admin.user, password: admin.password, replUser: "repl", replPassword: "pw", replHost: "127.%", log: quiet() }));
  // a proxy for server 2's replication stream: forwards the primary's packets whole; in
  // "cut-before-xid" it drops the first Xid event it sees and goes dark (no more bytes, sockets kept)
  const p = { server: null as unknown as Server, port: 0, socks: [] as Socket[], mode: "pass" as Ctx["proxy"]["mode"] };
  const primary = ctx.h.server(1);
  p.server = createServer((cli) => {
    cli.on("error", () => undefined);
    if (p.mode === "dark") { p.socks.push(cli); return; }
    const up = connect(primary.port, primary.host);
    up.on("error", () => undefined);
    p.socks.push(cli, up);
    let buf = Buffer.alloc(0);
    up.on("data", (d) => {
      if (p.mode === "dark") return;
      if (p.mode === "pass") return void cli.write(d);
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4) {
        const len = buf.readUIntLE(0, 3);
        if (buf.length < 4 + len) break;
        const pkt = buf.subarray(0, 4 + len);
        buf = buf.subarray(4 + len);
        // [length 3][seq 1][OK 0x00][semi-sync 0xef flag, when on][event: timestamp 4, type 1, ...]
        const semi = pkt[5] === 0xef ? 2 : 0;
        if (pkt[4] === 0 && pkt[4 + 1 + semi + 4] === 16) { p.mode = "dark"; return; } // XID_EVENT
        cli.write(pkt);
      }
    });
    cli.on("data", (d) => { if (p.mode !== "dark") up.write(d); });
    cli.on("close", () => up.destroy());
  });
  await new Promise<void>((r) => p.server.listen(0, "127.0.2.9", () => r()));
  p.port = (p.server.address() as { port: number }).port;
  ctx.proxy = p;
  await ctx.d[0]!.bootstrapPrimary();
  await ctx.d[1]!.replicateFrom("127.0.2.9", p.port);
  await ctx.d[2]!.replicateFrom(primary.host, primary.port);
  await ctx.h.sql(1, "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20)); INSERT INTO d.t (v) VALUES ('a'), ('b')");
  await until(async () => (await ctx.d[1]!.status()).gtidExecuted === (await ctx.d[0]!.status()).gtidExecuted);
});

P.after.each(async (ctx) => {
  for (const s of ctx.proxy.socks) s.destroy();
  await new Promise((r) => ctx.proxy.server.close(r));
  await Promise.all(ctx.d.map((d) => d.close()));
  await ctx.h.stop();
});

async function until(f: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

P("an event group cut before its Xid: not counted as received, discarded by the promotion, named", async ({ h, d, proxy }) => {
  proxy.mode = "cut-before-xid";
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('cut')"); // server 3 acknowledges it; server 2 gets all but its Xid
  const full = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[2]!.status()).gtidExecuted === full);
  const s2 = await d[1]!.status();
  console.log(`  cut: the primary at ${full}; server 2 received ${s2.gtidReceived}, executed ${s2.gtidExecuted}`);
  assert.is.not(s2.gtidReceived, full, "the incomplete group is not counted as received (the candidate order is right)");
  const r = await d[1]!.promote(2000);
  console.log(`  promoted at ${r.gtid} in a drain of ${r.drainMs} ms; discarded ${r.discarded}`);
  assert.is(r.discarded, full, "the promotion names the incomplete group it dropped");
  assert.is(r.gtid, s2.gtidExecuted, "promoted at the last complete transaction");
  assert.is((await h.sql(2, "SELECT COUNT(*) FROM d.t WHERE v = 'cut'")).trim(), "0", "nothing of it was applied");
  assert.is((await d[1]!.status()).readOnly, false);
});

P("an applier stopped alone: the promotion starts it and applies the relay log first", async ({ h, d }) => {
  await h.sql(3, "STOP SLAVE SQL_THREAD");
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('waiting')");
  const full = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[2]!.status()).gtidReceived === full);
  const before = await d[2]!.status();
  console.log(`  server 3 received ${before.gtidReceived}, executed ${before.gtidExecuted}, applier ${before.sqlRunning ? "running" : "stopped"}`);
  assert.is(before.sqlRunning, false);
  const r = await d[2]!.promote(2000);
  console.log(`  promoted at ${r.gtid} after a drain of ${r.drainMs} ms`);
  assert.is(r.gtid, full, "the transaction in the relay log was applied before the promotion");
  assert.is(r.discarded, null);
  assert.is((await h.sql(3, "SELECT COUNT(*) FROM d.t WHERE v = 'waiting'")).trim(), "1");
});

P("a replica stopped whole (the detach of issue 20): its relay log is replayed before its position is reported, and its promotion has it", async ({ h, d }) => {
  await h.sql(3, "STOP SLAVE SQL_THREAD");
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('in the relay log')");
  const full = (await d[0]!.status()).gtidExecuted;
  await until(async () => { const s = await d[2]!.status(); return s.gtidReceived === full; });
  await h.sql(3, "STOP SLAVE"); // both threads, as the detach of e30cda5 did: the next START would purge the relay log
  const s = await d[2]!.status();
  console.log(`  stopped whole with ${full} in its relay log: the driver replayed ${JSON.stringify(d[2]!.relayReplays)}; reports executed ${s.gtidExecuted}`);
  assert.is(s.gtidExecuted, full, "what the relay log held is applied");
  assert.is(s.gtidReceived, full);
  assert.is(d[2]!.relayReplays.length, 1);
  assert.is((await h.sql(3, "SELECT COUNT(*) FROM d.t WHERE v = 'in the relay log'")).trim(), "1");
  const again = await d[2]!.status();
  assert.is(d[2]!.relayReplays.length, 1, "once per incarnation of the server");
  assert.is(again.up, true);
  const r = await d[2]!.promote(2000);
  assert.is(r.gtid, full);
});

P("the room loses power: the primary and a replica with unapplied acknowledged writes die at once; the replica, restarted alone, keeps them and the cluster agrees", async ({ h, d }) => {
  await h.sql(3, "STOP SLAVE SQL_THREAD");
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('acked 1'); INSERT INTO d.t (v) VALUES ('acked 2')"); // ACKed by server 3's receiver (semi-sync)
  const full = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[2]!.status()).gtidReceived === full && (await d[1]!.status()).gtidExecuted === full);
  const before = await d[2]!.status();
  await Promise.all([h.kill9(1), h.kill9(3)]);
  await h.restart(3, ["--skip-slave-start"]); // as the appliance's mariadbd starts
  const after = await d[2]!.status();
  console.log(`  server 3 had executed ${before.gtidExecuted}, received ${before.gtidReceived}; restarted alone: ${after.gtidExecuted} after a replay of ${JSON.stringify(d[2]!.relayReplays)}`);
  assert.is(after.up, true);
  assert.is(after.gtidExecuted, full, "the acknowledged writes in its relay log are applied, not purged by the next START");
  assert.is((await h.sql(3, "SELECT COUNT(*) FROM d.t WHERE v LIKE 'acked %'")).trim(), "2");
  // the primary never comes back: server 3 is promoted, server 2 replicates from it, same data
  await d[2]!.promote(2000);
  assert.equal(await d[1]!.checkCanRejoin(await d[2]!.gtidBinlogState()), { ok: true }, "server 2 has nothing server 3 lacks");
  await d[1]!.replicateFrom(h.server(3).host, h.server(3).port);
  await h.sql(3, "INSERT INTO d.t (v) VALUES ('after')");
  const end = (await d[2]!.status()).gtidExecuted;
  await until(async () => (await d[1]!.status()).gtidExecuted === end);
  assert.is(await h.sql(2, "SELECT GROUP_CONCAT(v ORDER BY id) FROM d.t"), await h.sql(3, "SELECT GROUP_CONCAT(v ORDER BY id) FROM d.t"), "every node holds the same rows");
});

P("a caught-up replica killed -9 and restarted (bench-web's lab kill): nothing to replay, it reports up and replicates again", async ({ h, d }) => {
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('before the kill')");
  const full = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[2]!.status()).gtidExecuted === full);
  await h.kill9(3);
  await h.restart(3, ["--skip-slave-start"]);
  const s = await d[2]!.status();
  console.log(`  restarted: up ${s.up}, executed ${s.gtidExecuted}, ${s.lastError ?? "no error"}; replays ${JSON.stringify(d[2]!.relayReplays)}`);
  assert.is(s.up, true, s.lastError ?? undefined);
  assert.is(s.gtidExecuted, full);
  assert.is(d[2]!.relayReplayFailures, 0);
  await d[2]!.replicateFrom(h.server(1).host, h.server(1).port);
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('after the kill')");
  const end = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[2]!.status()).gtidExecuted === end);
});

P("a replica killed with a group cut before its Xid at the end of its relay log: the replay drops it (never acknowledged), keeps the rest", async ({ h, d, proxy }) => {
  await h.sql(2, "STOP SLAVE SQL_THREAD");
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('whole')");
  const whole = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[1]!.status()).gtidReceived === whole);
  proxy.mode = "cut-before-xid";
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('cut')");
  await new Promise((r) => setTimeout(r, 200)); // the group's events before its Xid reach server 2's relay log
  await h.kill9(2);
  await h.restart(2, ["--skip-slave-start"]);
  const s = await d[1]!.status();
  console.log(`  restarted: executed ${s.gtidExecuted} after ${JSON.stringify(d[1]!.relayReplays)}`);
  assert.is(s.up, true);
  assert.is(s.gtidExecuted, whole, "the whole group applied, the cut one not");
  assert.is((await h.sql(2, "SELECT GROUP_CONCAT(v ORDER BY id) FROM d.t")).trim(), "a,b,whole");
  // it replicates again from the primary, which is still up: it fetches from after what it replayed
  await d[1]!.replicateFrom(h.server(1).host, h.server(1).port);
  await h.sql(1, "INSERT INTO d.t (v) VALUES ('later')");
  const end = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[1]!.status()).gtidExecuted === end);
  const st = await d[1]!.status();
  assert.is(st.lastError, null, "nothing applied twice");
  assert.is(await h.sql(2, "SELECT GROUP_CONCAT(v ORDER BY id) FROM d.t"), await h.sql(1, "SELECT GROUP_CONCAT(v ORDER BY id) FROM d.t"), "the same rows as the primary");
});

P("a replay that fails: the server is reported down with the reason, counted, and tried again", async ({ h, d }) => {
  const broken = new MysqlDriver({ flavour: mariadb, host: h.server(3).host, port: h.server(3).port, user: h.admin.user, password: h.admin.password, replUser: "repl", replPassword: "pw", replHost: "127.%", log: quiet(), relayReplay: { binlog: "/bin/false" } });
  try {
    await h.sql(3, "STOP SLAVE");
    const s = await broken.status();
    assert.is(s.up, false);
    assert.match(s.lastError ?? "", /relay log not replayed: .*relay log replay failed: mariadb-binlog 1/);
    assert.is(broken.relayReplayFailures, 1);
    await broken.status();
    assert.is(broken.relayReplayFailures, 2, "tried again at the next read");
  } finally {
    await broken.close();
  }
});

P("a data check: each replica recomputes the primary's checksums, and one with other data says so", async ({ h, d }) => {
  await until(async () => (await d[1]!.status()).gtidExecuted === (await d[0]!.status()).gtidExecuted && (await d[2]!.status()).gtidExecuted === (await d[0]!.status()).gtidExecuted);
  // a row on server 3 that nothing else has (written past read_only, not binlogged)
  await h.sql(3, "SET sql_log_bin = 0; SET GLOBAL read_only = 0; INSERT INTO d.t (v) VALUES ('rogue'); SET GLOBAL read_only = 1");
  const r = await d[0]!.verify(1000, 1 << 30);
  const full = (await d[0]!.status()).gtidExecuted;
  await until(async () => (await d[1]!.status()).gtidExecuted === full && (await d[2]!.status()).gtidExecuted === full);
  const same = await d[1]!.differences();
  const differ = await d[2]!.differences();
  console.log(`  check of ${r.tables} tables in ${r.ms} ms; server 2: ${same.length} differences; server 3: ${JSON.stringify(differ)}`);
  assert.is(r.tables, 1);
  assert.equal(same, [], "a replica with the same data finds nothing");
  assert.is(differ.length, 1, "the replica with the rogue row finds its table");
  assert.equal([differ[0]!.db, differ[0]!.tbl, differ[0]!.cnt, differ[0]!.masterCnt], ["d", "t", 3, 2]);
});

P.run();
