// The pure parts of backups (agent/backup/): retention, where a backup is taken and stored,
// the restore plan and its refusals, the binlog text parser.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseBinlogText, type BinlogEvent } from "../../agent/backup/binlog-scan.ts";
import type { Manifest } from "../../agent/backup/manifest.ts";
import { whereToArchive, whereToBackup } from "../../agent/backup/place.ts";
import { planRestore, type ArchiveInput, type BaseInput } from "../../agent/backup/plan.ts";
import { retain } from "../../agent/backup/retention.ts";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 6, 12, 0, 0); // a Sunday
const bk = (id: string, ms: number, over: Partial<Manifest> = {}): Manifest => ({
  id, kind: "mysql", name: "mysql", node: "node2", storedOn: "node3", startedAt: new Date(ms).toISOString(),
  finishedAt: new Date(ms + 1000).toISOString(), bytes: 1, parent: null, state: "complete", detail: {}, ...over,
});

const Ret = suite("retention");
Ret("daily 7 weekly 4 over 60 days of two backups a day", () => {
  const all: Manifest[] = [];
  for (let d = 0; d < 60; d++) for (const h of [1, 13]) all.push(bk(`d${d}h${h}`, NOW - d * DAY - (12 - h) * 3600_000 - (h === 13 ? DAY : 0)));
  const r = retain(all, { daily: 7, weekly: 4 }, NOW);
  const kept = r.keep.map((k) => k.id);
  // 7 days (today has only the 01:00 one) + weeks not already covered by a daily one
  const days = new Set(all.filter((b) => kept.includes(b.id)).map((b) => b.startedAt.slice(0, 10)));
  assert.is(days.size, kept.length, "at most one per day");
  assert.ok(kept.length >= 7 && kept.length <= 7 + 4, `kept ${kept.length}`);
  assert.is(r.keep.length + r.prune.length, all.length);
  const newest = all.reduce((a, b) => (a.startedAt > b.startedAt ? a : b));
  assert.ok(kept.includes(newest.id));
  const oldestKept = Math.min(...all.filter((b) => kept.includes(b.id)).map((b) => Date.parse(b.startedAt)));
  assert.ok(NOW - oldestKept < 5 * 7 * DAY, "nothing older than 4 weeks back");
});
Ret("the newest good backup is kept even outside every window; bad ones are not it", () => {
  const r = retain([bk("old", NOW - 90 * DAY), bk("older", NOW - 95 * DAY), bk("bad", NOW - 1000, { state: "bad" })], { daily: 7, weekly: 4 }, NOW);
  assert.equal(r.keep.map((k) => k.id).sort(), ["bad", "old"]);
  assert.equal(r.prune.map((k) => k.id), ["older"]);
});
Ret("a kept incremental keeps its parent chain", () => {
  const r = retain([bk("full", NOW - 60 * DAY, { kind: "vm" }), bk("inc1", NOW - 50 * DAY, { kind: "vm", parent: "full" }), bk("inc2", NOW - 1000, { kind: "vm", parent: "inc1" })], { daily: 1, weekly: 0 }, NOW);
  assert.equal(r.prune, []);
  assert.match(r.keep.find((k) => k.id === "full")!.why, /parent of/);
});
Ret.run();

const Place = suite("place");
const members = ["node1", "node2", "node3"];
Place("taken on the lowest-named replica, stored on the other replica, never the primary", () => {
  assert.equal(whereToBackup("mysql", { members, up: members, holder: "node1", excluded: [] }), { ok: true, take: "node2", store: "node3" });
  assert.equal(whereToBackup("mysql", { members, up: members, holder: "node2", excluded: [] }), { ok: true, take: "node1", store: "node3" });
  assert.equal(whereToBackup("mysql", { members, up: ["node1", "node3"], holder: "node1", excluded: [] }), { ok: true, take: "node3", store: "node1" });
});
Place("refused with the reasons when no replica qualifies", () => {
  const r = whereToBackup("mysql", { members, up: ["node1", "node2"], holder: "node1", excluded: ["node2"] });
  assert.not.ok(r.ok);
  if (!r.ok) assert.is(r.error, "no replica of mysql to take a backup on (node2 in maintenance or fenced, node3 down); never taken on the primary node1");
  const n = whereToBackup("redis", { members, up: members, holder: null, excluded: [] });
  assert.not.ok(n.ok);
});
Place("archive stays where it runs while it can; moves off a node that became primary", () => {
  assert.equal(whereToArchive({ members, up: members, holder: "node1", excluded: [] }, "node3"), { ok: true, node: "node3" });
  assert.equal(whereToArchive({ members, up: members, holder: "node3", excluded: [] }, "node3"), { ok: true, node: "node1" });
  assert.equal(whereToArchive({ members, up: ["node1"], holder: "node1", excluded: [] }, null).ok, false);
});
Place.run();

const Plan = suite("planRestore");
const T0 = Date.UTC(2026, 11, 6, 10, 0, 0);
const ev = (seq: number, sec: number, server = 1): BinlogEvent => ({ domain: 0, server, seq, ts: T0 + sec * 1000 });
const base = (id: string, seq: number, finishedSec: number): BaseInput => ({ id, gtid: seq ? `0-1-${seq}` : "", finishedMs: T0 + finishedSec * 1000 + 400, dir: `/t/mysql/${id}` });
// primary node1 writes seq 1..20 at one per second; a failover at 20 s: node2's stream from 15 on
const archive: ArchiveInput = {
  files: [
    { path: "/a/s1/bin.000001", segment: "s1", events: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => ev(s, s)) },
    { path: "/a/s1/bin.000002", segment: "s1", events: [11, 12, 13, 14, 15, 16, 17].map((s) => ev(s, s)) },
    { path: "/a/s2/bin.000007", segment: "s2", events: [15, 16, 17, 18, 19, 20].map((s) => ev(s, s, s > 17 ? 2 : 1)) },
  ],
  caughtUpMs: T0 + 30_000,
  caughtUpSeq: 20,
};
Plan("to a time: the newest base at or before it, the files after it, the last transaction before the second", () => {
  const r = planRestore([base("b1", 3, 3), base("b2", 8, 8)], archive, { time: T0 + 16_700 });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.plan.base.id, "b2");
  assert.is(r.plan.reach, "0-1-15"); // seq 16 was written at 16 s, not before 16 s
  assert.is(r.plan.transactions, 7);
  assert.equal(r.plan.segments, [{ segment: "s1", files: ["/a/s1/bin.000001", "/a/s1/bin.000002"] }]);
  assert.match(r.plan.describe, /base backup b2 .* 7 transaction\(s\) from 2 archived binlog file\(s\).*reaching gtid 0-1-15/);
});
Plan("across a failover: the second stream supplies what the first never got", () => {
  const r = planRestore([base("b2", 8, 8)], archive, { gtid: "0-2-19" });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.plan.segments.map((s) => s.segment), ["s1", "s2"]);
  assert.is(r.plan.stop, "0-2-19");
  assert.is(r.plan.transactions, 11);
});
Plan("a time after the archive's last word or before every base is refused with the range", () => {
  const late = planRestore([base("b1", 3, 3)], archive, { time: T0 + 45_000 });
  assert.not.ok(late.ok);
  if (!late.ok) assert.is(late.error, "no backup covers 2026-12-06T10:00:45Z: restorable points: from 2026-12-06T10:00:03Z (gtid 0-1-3, base backup b1) to 2026-12-06T10:00:30Z (gtid 0-2-20)");
  const early = planRestore([base("b1", 3, 3)], archive, { time: T0 + 1000 });
  assert.not.ok(early.ok);
  if (!early.ok) assert.match(early.error, /^no backup covers 2026-12-06T10:00:01Z: restorable points: from 2026-12-06T10:00:03Z/);
});
Plan("a gap in the archive: points past it need a base after it", () => {
  const gappy: ArchiveInput = { files: [{ path: "/a/s1/f1", segment: "s1", events: [4, 5, 6, 9, 10, 11].map((s) => ev(s, s)) }], caughtUpMs: null };
  const r = planRestore([base("b1", 3, 3)], gappy, { time: T0 + 10_500 });
  assert.not.ok(r.ok);
  if (!r.ok) assert.match(r.error, /to 2026-12-06T10:00:06Z \(gtid 0-1-6\)/);
  const after = planRestore([base("b1", 3, 3), base("b9", 9, 9)], gappy, { time: T0 + 10_500 });
  assert.ok(after.ok && after.plan.base.id === "b9" && after.plan.reach === "0-1-9");
  const hole = planRestore([base("b1", 3, 3), base("b9", 9, 9)], gappy, { time: T0 + 7_500 });
  assert.not.ok(hole.ok);
  if (!hole.ok) assert.match(hole.error, /except 2026-12-06T10:00:06Z to 2026-12-06T10:00:09Z \(a gap in the binlog archive\)/);
});
Plan("bad input is refused, not thrown", () => {
  for (const [bases, t, re] of [
    [[], { time: T0 }, /no good base backup/],
    [[base("b1", 3, 3)], { gtid: "zero" }, /not a MariaDB GTID/],
    [[base("b1", 3, 3)], { gtid: "0-1-5,1-1-2" }, /spans 2 GTID domains/],
    [[base("b1", 3, 3)], { gtid: "0-3-5" }, /seq 5 was written by server 1/],
    [[base("b1", 3, 3)], { gtid: "0-2-99" }, /no backup covers gtid 0-2-99/],
    [[base("b1", 3, 3)], { time: NaN }, /not a valid date/],
  ] as const) {
    const r = planRestore([...bases] as BaseInput[], archive, t);
    assert.not.ok(r.ok);
    if (!r.ok) assert.match(r.error, re);
  }
});
Plan("the archiver's word extends the range only up to what it held then", () => {
  const r = planRestore([base("b1", 3, 3)], { ...archive, caughtUpSeq: 25 }, { time: T0 + 25_000 });
  assert.not.ok(r.ok, "the archive said caught up at seq 25, but holds only up to 20: 25 s is not vouched for");
  if (!r.ok) assert.match(r.error, /to 2026-12-06T10:00:20Z \(gtid 0-2-20\)/);
});
Plan("the base alone when nothing was written after it", () => {
  const r = planRestore([base("b1", 20, 25)], archive, { time: T0 + 26_000 });
  assert.ok(r.ok && r.plan.stop === null && r.plan.transactions === 0 && r.plan.reach === "0-1-20");
});
Plan.run();

const Scan = suite("parseBinlogText");
Scan("whole transactions become events in UTC; a cut one is not counted; a mangled line is", () => {
  const xid = "#261206 10:28:56 server id 1  end_log_pos 700 CRC32 0x50350c3b 	Xid = 12";
  const text = [
    "#261206 10:28:56 server id 1  end_log_pos 322 CRC32 0x78fe05fe 	Binlog checkpoint bin.000001",
    "#261206 10:28:56 server id 1  end_log_pos 680 CRC32 0x50350c3b 	GTID 0-1-3 trans",
    "#261206 10:28:56 server id 1  end_log_pos 690 CRC32 0x50350c3b 	Write_rows: table id 33 flags: STMT_END_F",
    xid,
    "COMMIT/*!*/;",
    "#261206  9:28:57 server id 2  end_log_pos 907 CRC32 0x9365e73a 	GTID 0-2-4 ddl",
    "#261206  9:28:57 server id 2  end_log_pos 990 CRC32 0x9365e73a 	Query	thread_id=5	exec_time=0	error_code=0",
    "#261206 10:28:57 server id 1  end_log_pos 907 CRC32 0x9365e73a 	GTID 0-1-5 cid=12 trans",
    xid,
    "#2612xx 10:28:57 server id 1  end_log_pos 907 CRC32 0x9365e73a 	GTID 0-1-6 trans",
    xid,
    "INSERT INTO t VALUES ('GTID 0-1-7 trans')",
    "#261206 10:28:58 server id 1  end_log_pos 1907 CRC32 0x9365e73a 	GTID 0-1-8 trans",
    "#261206 10:28:58 server id 1  end_log_pos 1990 CRC32 0x50350c3b 	Write_rows: table id 33 flags: STMT_END_F",
  ].join("\n");
  const r = parseBinlogText(text);
  assert.equal(r.events, [
    { domain: 0, server: 1, seq: 3, ts: Date.UTC(2026, 11, 6, 10, 28, 56) },
    { domain: 0, server: 2, seq: 4, ts: Date.UTC(2026, 11, 6, 9, 28, 57) },
    { domain: 0, server: 1, seq: 5, ts: Date.UTC(2026, 11, 6, 10, 28, 57) },
  ]);
  assert.is(r.bad, 1);
});
Scan.run();
