// The pure pieces of issues 20 and 22: the relay log's tail, the listener lookup and kill of a
// local fence, a GTID position without an incomplete transaction, the data check's statements,
// the local manager's rules for a server that dies, hangs or restarts, and the alarms that say
// writes are down, data diverged, or an alarm is only an unreachable node's last word.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { mergeAlarms } from "../../agent/alarms/history.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import type { Alarm } from "../../agent/alarms/types.ts";
import type { ClusterConfig } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { LocalManager, type DbFacts, type LocalFacts, type PortalFacts } from "../../agent/ha/local.ts";
import { withoutGtid } from "../../agent/resources/gtid.ts";
import { checksumSql, describe, parseDifferences } from "../../agent/resources/mysql-verify.ts";
import { hexAddr, killListener, listeningInodes, type ProcFs } from "../../agent/resources/process.ts";
import { relayTail } from "../../agent/resources/relay.ts";

const Relay = suite("relay log tail");

Relay("MariaDB: a group without its Xid is open; a whole one is not", () => {
  const whole = [
    { Event_type: "Gtid", Info: "BEGIN GTID 0-1-6" }, { Event_type: "Annotate_rows", Info: "INSERT ..." },
    { Event_type: "Table_map", Info: "table_id: 18 (d.t)" }, { Event_type: "Write_rows_v1", Info: "table_id: 18 flags: STMT_END_F" },
    { Event_type: "Xid", Info: "COMMIT /* xid=12 */" },
  ];
  assert.equal(relayTail(whole), { ok: true, incomplete: null, events: 5 });
  // what the lab's proxy left (test/broker/mysql-promote.test.ts): everything but the Xid
  assert.equal(relayTail([...whole, ...whole.slice(0, 4).map((e, i) => (i === 0 ? { ...e, Info: "BEGIN GTID 0-1-7" } : e))]), { ok: true, incomplete: "0-1-7", events: 9 });
});

Relay("MariaDB standalone DDL, MySQL 8 groups, COMMIT as a Query event", () => {
  assert.equal(relayTail([{ Event_type: "Gtid", Info: "GTID 0-1-8" }, { Event_type: "Query", Info: "CREATE TABLE t (a INT)" }]), { ok: true, incomplete: null, events: 2 });
  assert.equal(relayTail([{ Event_type: "Gtid", Info: "GTID 0-1-8" }]), { ok: true, incomplete: "0-1-8", events: 1 });
  const u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  const my = [{ Event_type: "Gtid", Info: `SET @@SESSION.GTID_NEXT= '${u}:5'` }, { Event_type: "Query", Info: "BEGIN" }, { Event_type: "Table_map", Info: "" }, { Event_type: "Write_rows", Info: "" }];
  assert.equal(relayTail(my), { ok: true, incomplete: `${u}:5`, events: 4 }, "MySQL 8: Retrieved_Gtid_Set counts it; this says it is open");
  assert.equal(relayTail([...my, { Event_type: "Xid", Info: "COMMIT /* xid=9 */" }]), { ok: true, incomplete: null, events: 5 });
  assert.equal(relayTail([{ Event_type: "Gtid", Info: "BEGIN GTID 0-1-9" }, { Event_type: "Query", Info: "BEGIN" }, { Event_type: "Query", Info: "COMMIT" }]), { ok: true, incomplete: null, events: 3 });
});

Relay("rows it cannot read are an error value, never a throw", () => {
  assert.is(relayTail([{ Event_type: 7, Info: "x" }]).ok, false);
  assert.is(relayTail([{ Event_type: "Gtid", Info: "nonsense" }]).ok, false);
  assert.is(relayTail([]).ok, true);
});

Relay("a position without the incomplete transaction (the drain's target)", () => {
  assert.is(withoutGtid("mariadb", "0-1-7", "0-1-7"), "0-1-6");
  assert.is(withoutGtid("mariadb", "0-1-7,1-2-3", "0-1-7"), "0-1-6,1-2-3");
  assert.is(withoutGtid("mariadb", "0-1-6", "0-1-7"), "0-1-6", "not in it: unchanged");
  assert.is(withoutGtid("mariadb", "0-1-7", null), "0-1-7");
  const u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  assert.is(withoutGtid("mysql", `${u}:1-5`, `${u}:5`), `${u}:1-4`);
  assert.is(withoutGtid("mariadb", "garbage", "0-1-7"), "garbage");
});

Relay.run();

const Proc = suite("the local fence: the listener of a port, killed and confirmed gone");

// /proc/net/tcp of a namespace where 198.18.0.11:3306 listens (inode 4242) and 6379 on 0.0.0.0
const TCP = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 0B0012C6:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0",
  "   1: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0",
  "   2: 0B0012C6:0CEA 640012C6:D431 01 00000000:00000000 00:00000000 00000000     0        0 6000 1 0000000000000000 20 4 30 10 -1",
].join("\n");

Proc("/proc/net/tcp: listening inodes of an address and port (0.0.0.0 counts)", () => {
  assert.is(hexAddr("198.18.0.11"), "0B0012C6");
  assert.equal(listeningInodes(TCP, "198.18.0.11", 3306), [4242], "the established connection (st 01) is not a listener");
  assert.equal(listeningInodes(TCP, "198.18.0.11", 6379), [5151]);
  assert.equal(listeningInodes(TCP, "198.18.0.12", 3306), []);
  assert.throws(() => hexAddr("not-an-ip"));
});

function fakeFs(o: { comm: string; state: string; dies: boolean }): ProcFs & { killed: number[] } {
  let tcp = TCP;
  let state: string | null = o.state;
  const killed: number[] = [];
  return {
    killed,
    tcp: () => tcp,
    pids: () => [1, 77, 4321],
    fds: (pid) => (pid === 4321 && state !== null ? ["/dev/null", "socket:[4242]"] : pid === 77 ? ["socket:[9]"] : []),
    state: (pid) => (pid === 4321 ? state : "S"),
    comm: (pid) => (pid === 4321 ? o.comm : "bash"),
    kill: (pid) => { killed.push(pid); if (o.dies) { state = "Z"; tcp = TCP.split("\n").filter((l) => !l.includes(" 4242 ")).join("\n"); } },
  };
}
const now = { sleep: () => Promise.resolve(), timeoutMs: 0 };

Proc("a hung (stopped) mariadbd is killed; gone and no listener: the proof says so", async () => {
  const fs = fakeFs({ comm: "mariadbd", state: "T", dies: true });
  const r = await killListener("198.18.0.11", 3306, ["mariadbd", "mysqld"], { fs, ...now });
  assert.equal(fs.killed, [4321]);
  assert.ok(r.ok, r.proof);
  assert.match(r.proof, /killed pid 4321 \(mariadbd, stopped\), the listener of 198\.18\.0\.11:3306; gone/);
});

Proc("nothing listens: confirmed without killing; another program on the port: refused; one that stays: not confirmed", async () => {
  const none = await killListener("198.18.0.12", 3306, ["mariadbd"], { fs: fakeFs({ comm: "mariadbd", state: "S", dies: true }), ...now });
  assert.ok(none.ok);
  assert.match(none.proof, /nothing listens on 198\.18\.0\.12:3306/);
  const other = fakeFs({ comm: "sshd", state: "S", dies: true });
  const o = await killListener("198.18.0.11", 3306, ["mariadbd"], { fs: other, ...now });
  assert.not.ok(o.ok);
  assert.equal(other.killed, [], "a listener of another name is never killed");
  const stays = await killListener("198.18.0.11", 3306, ["mariadbd"], { fs: fakeFs({ comm: "mariadbd", state: "D", dies: false }), ...now });
  assert.not.ok(stays.ok, "a process still there after the kill is no proof");
  assert.match(stays.proof, /still there/);
});

Proc.run();

const Verify = suite("data check statements");

Verify("the checksum statement: every column, NULLs marked, identifiers quoted, the run a number", () => {
  const sql = checksumSql({ db: "fms", tbl: "wr`ites", columns: ["id", "at"] }, 1796534443116);
  assert.match(sql, /^REPLACE INTO bollard\.checksums \(db, tbl, run, cnt, crc\) SELECT 'fms', 'wr`ites', 1796534443116, COUNT\(\*\)/);
  assert.match(sql, /CONCAT_WS\('#', `id`, `at`, CONCAT\(ISNULL\(`id`\), ISNULL\(`at`\)\)\)/);
  assert.match(sql, /FROM `fms`\.`wr``ites`$/);
  assert.match(checksumSql({ db: "a'b", tbl: "t", columns: ["c"] }, 1), /SELECT 'a\\'b', 't'/);
});

Verify("differences read and said", () => {
  const d = parseDifferences([{ db: "fms", tbl: "writes", run: "5", cnt: "72", crc: "1", master_cnt: "71", master_crc: "2" }, { db: null }]);
  assert.equal(d, [{ db: "fms", tbl: "writes", run: 5, cnt: 72, crc: "1", masterCnt: 71, masterCrc: "2" }]);
  assert.is(describe(d), "fms.writes (72 rows here, 71 on the primary) at check 5");
});

Verify.run();

const Lrm = suite("the local manager and a server that dies, hangs or restarts");

const cfg = (flags: Record<string, string> = {}): ClusterConfig => ({ epoch: 5, term: 2, members: ["node1", "node2", "node3"].map((name) => ({ name, bus: `${name}:1883` })), assignments: { mysql: "node1", vip: "node1" }, flags });
const view = (c: ClusterConfig, o: Partial<NodeView> = {}): NodeView => ({
  node: "node1", role: "follower", term: 2, leader: "node2", quorum: true, lease: false, acting: true, current: true, tilt: false, selfFenced: false, member: true,
  config: c, committed: c, peers: [], counters: {}, ...o,
});
const db = (o: Partial<DbFacts> = {}): DbFacts => ({ up: true, role: "none", writable: false, received: "0-1-5", applied: "0-1-5", source: null, inst: "a.1", ...o });
function plan(self: string, d: DbFacts, c: ClusterConfig, o: Partial<LocalFacts> = {}, v: Partial<NodeView> = {}) {
  const m = new LocalManager(self, () => undefined);
  const f: LocalFacts = {
    now: 0, view: view(c, { node: self, ...v }), mysql: d, redis: null, portal: null, vip: null,
    peerApplied: () => "0-1-5", alive: () => true, peerVip: () => false, extra: () => null, peerPrimary: () => true, ...o,
  };
  return m.plan(f, new Set()).filter((a) => a.res === "mysql");
}

Lrm("a holder's restarted server is promoted only for the incarnation the leader confirmed", () => {
  assert.equal(plan("node1", db({ inst: "a.2" }), cfg({ "inst:mysql": "a.1" })), [], "another incarnation: waits read-only for the leader");
  assert.equal(plan("node1", db({ inst: "a.1" }), cfg({ "inst:mysql": "a.1" })).map((a) => a.do), ["promote"]);
  assert.equal(plan("node1", db({ inst: "a.1" }), cfg()), [], "no confirmed incarnation: not on its own word");
});

Lrm("a server that does not answer is killed after service_fail_ms (500 ms when refused), then started once it moved", () => {
  assert.equal(plan("node1", db({ up: false, downMs: 1500 }), cfg()), []);
  assert.equal(plan("node1", db({ up: false, downMs: 2000 }), cfg()).map((a) => a.do), ["kill"]);
  assert.equal(plan("node1", db({ up: false, downMs: 600, refused: true }), cfg()).map((a) => a.do), ["kill"], "nothing listens: dead, not slow");
  assert.equal(plan("node1", db({ up: false, downMs: 3000, fenced: "killed pid 1" }), cfg()), [], "the holder's: not started while it still holds the service");
  assert.equal(plan("node1", db({ up: false, downMs: 3000, fenced: "killed pid 1" }), { ...cfg(), assignments: { mysql: "node2" } }).map((a) => a.do), ["start"]);
  assert.equal(plan("node1", db({ up: false, downMs: 12_500, fenced: "killed pid 1" }), cfg()).map((a) => a.do), ["start"], "nothing moved it in 10 s: started read-only for the leader to compare");
});

Lrm("a replica detaches from a silent holder only when it is being fenced or nothing comes from it; never from a fenced one", () => {
  const c2 = { ...cfg(), assignments: { mysql: "node2" } };
  const silent = { alive: (n: string) => n !== "node2" };
  const r = db({ role: "replica", source: "node2", receiving: true });
  assert.equal(plan("node1", { ...r, recvAgoMs: 200 }, c2, silent), [], "a stalled agent: its server still sends");
  assert.equal(plan("node1", { ...r, recvAgoMs: 1500 }, c2, silent).map((a) => a.do), ["detach"]);
  assert.equal(plan("node1", { ...r, recvAgoMs: 200 }, { ...c2, flags: { "fencing:node2": "1" } }, silent).map((a) => a.do), ["detach"]);
  assert.equal(plan("node1", { ...r, recvAgoMs: 5000, receiving: false }, c2, silent), [], "already detached");
  assert.equal(plan("node1", db({ role: "replica" }), { ...c2, flags: { "fencing:node2": "1" } }), [], "not attached to a holder being fenced");
  assert.equal(plan("node1", db({ role: "replica" }), c2, { peerPrimary: () => false }), [], "nor to one that is not a writable primary (restarted)");
});

Lrm("a replica that detached from a silent holder attaches again once the holder is heard (nemesis seed 112)", () => {
  const c2 = { ...cfg(), assignments: { mysql: "node2" } };
  const detached = db({ role: "replica", source: "node2", receiving: false, recvAgoMs: 6000 });
  assert.equal(plan("node1", detached, c2).map((a) => a.do), ["replicate"], "heard again: pointed at it again");
  assert.equal(plan("node1", { ...detached, receiving: true }, c2), [], "attached and receiving: nothing to do");
  assert.equal(plan("node1", detached, { ...c2, flags: { "fencing:node2": "1" } }), [], "not while it is being fenced");
  assert.equal(plan("node1", detached, c2, { extra: () => "0-1-9" }), [], "not if it has what the holder lacks (held out, after the suspicion delay)");
});

Lrm("a replica whose data differs stops replicating and is held out", () => {
  const m = new LocalManager("node3", () => undefined);
  const c2 = { ...cfg(), assignments: { mysql: "node1" } };
  const f: LocalFacts = { now: 0, view: view(c2, { node: "node3" }), mysql: db({ role: "replica", source: "node1", receiving: true, diverged: "fms.writes (72 rows here, 71 on the primary) at check 5" }), redis: null, portal: null, vip: null, peerApplied: () => "0-1-5", alive: () => true, peerVip: () => false, extra: () => null };
  assert.equal(m.plan(f, new Set()).map((a) => a.do), ["detach"]);
  assert.match(m.heldOut.get("mysql")!, /data differs from node1's: fms\.writes/);
});

Lrm("a portal routes no client to a holder being fenced: an immediate close instead of a 1 s connect timeout", () => {
  const m = new LocalManager("node3", () => undefined);
  const routes = (c: ClusterConfig, portal: PortalFacts = { mysql: "node1", redis: "node1", running: true, downMs: 0 }) => {
    const f: LocalFacts = { now: 0, view: view(c, { node: "node3" }), mysql: null, redis: null, portal, vip: null, peerApplied: () => "0-1-5", alive: () => true, peerVip: () => false, extra: () => null };
    return m.plan(f, new Set()).filter((a) => a.res === "portal");
  };
  const c = { ...cfg(), assignments: { mysql: "node1", redis: "node1", vip: "node3" } };
  assert.equal(routes(c), [], "routes to the holder while nothing fences it");
  for (const flag of ["fencing:node1", "fenced:node1"]) {
    const r = routes({ ...c, flags: { [flag]: "1" } });
    assert.equal(r.map((a) => a.do === "route" && [a.mysql, a.redis]), [[null, null]], flag);
    assert.match(r[0]!.why, /no route to a node being fenced/);
  }
  assert.equal(routes({ ...c, flags: { "fencing:node2": "1" } }), [], "another node's fence changes nothing");
  const moved = { ...c, assignments: { mysql: "node2", redis: "node2", vip: "node3" }, flags: { "fenced:node1": "1" } };
  assert.equal(routes(moved, { mysql: null, redis: null, running: true, downMs: 0 }).map((a) => a.do === "route" && [a.mysql, a.redis]), [["node2", "node2"]], "the new holder once committed");
});

Lrm.run();

const Al = suite("writes down, data diverged, stale");

Al("the leader raises writes-down with what to type; a node that does not lead clears its own", () => {
  const w = { leading: true, services: ["mysql", "redis"], down: [{ svc: "mysql", since: Date.UTC(2026, 11, 6, 16, 14, 39), forMs: 47_000, why: "node2, holding mysql, is lost; anti-flapping", command: "bollard ha ack mysql" }] };
  const e = evaluate({ node: "node3", writes: w }, defaultAlarmsConfig().rules);
  assert.equal(e.conditions.map((c) => `${c.severity} ${c.id}: ${c.text}: ${c.detail}`), [
    "critical writes-down:mysql: mysql: writes are down: no writable primary clients can reach since 16:14:39 UTC (47 s): node2, holding mysql, is lost; anti-flapping; to let bollard act: bollard ha ack mysql",
  ]);
  assert.ok(e.scopes.includes("writes-down:redis"), "redis judged fine: a held alarm clears");
  const f = evaluate({ node: "node1", writes: { ...w, leading: false } }, defaultAlarmsConfig().rules);
  assert.equal(f.conditions, []);
  assert.ok(f.scopes.includes("writes-down:mysql"), "judged, so its own clears when it stops leading");
});

Al("a replica whose data differs: CRITICAL data-diverged", () => {
  const e = evaluate({ node: "node3", mysql: { up: true, role: "replica", ioRunning: false, sqlRunning: true, lagSeconds: null, lastError: null, diverged: "fms.writes (72 rows here, 71 on the primary) at check 5" } }, defaultAlarmsConfig().rules);
  assert.ok(e.conditions.some((c) => c.id === "data-diverged:node3:mysql" && c.severity === "critical"));
});

Al("alarms that only unreachable nodes report are stale, after the live ones", () => {
  const a = (id: string, reporter: string, severity: Alarm["severity"] = "major"): Alarm => ({
    id, rule: "node-lost", severity, node: reporter, reporter, text: id, state: "raised", raisedAt: 1, updatedAt: 1, ackedBy: null, ackedAt: null, clearedAt: null, occurrence: 1, flaps: 0, flapping: false,
  } as unknown as Alarm);
  const list = mergeAlarms([a("node1 lost", "node2", "critical"), a("node3 lost", "node1"), a("node3 lost", "node2")], (n) => (n === "node2" ? 40_000 : null));
  assert.equal(list.map((x) => [x.id, x.reporters.join(","), x.stale ?? null]), [
    ["node3 lost", "node1,node2", null],
    ["node1 lost", "node2", { forMs: 40_000 }],
  ], "a row one live node still reports is live; node2's alone is stale, and comes last though critical");
});

Al.run();
