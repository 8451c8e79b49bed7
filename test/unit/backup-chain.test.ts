// Incremental MariaDB base backups, the pure part (agent/backup/chain.ts, the checkpoint parser
// in mysql-backup.ts): which backup a new one builds on, the chain a restore applies, refusals.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { incrementalParent, restorable, restoreChain } from "../../agent/backup/chain.ts";
import type { Manifest } from "../../agent/backup/manifest.ts";
import { parseCheckpoints } from "../../agent/backup/mysql-backup.ts";

const SRC = "ibdata1:42:1700000000";
let n = 0;
const m = (id: string, over: Partial<Manifest> & { detail?: Record<string, unknown> } = {}): Manifest => ({
  id, kind: "mysql", name: "mysql", node: "node2", storedOn: "node3",
  startedAt: `2026-12-06T10:${String(n++).padStart(2, "0")}:00.000Z`, finishedAt: "2026-12-06T11:00:00.000Z", bytes: 1,
  parent: null, state: "complete", ...over, detail: { gtid: "0-1-1", source: SRC, toLsn: 1000 + n, depth: 0, ...(over.detail ?? {}) },
});

const P = suite("incrementalParent");
P("off, or nothing yet: full", () => {
  assert.match(incrementalParent([m("a")], "node2", SRC, 0).why, /incremental backups are off/);
  assert.equal(incrementalParent([], "node2", SRC, 6), { parent: null, why: "full: the first backup" });
});
P("the newest backup of the same node and datadir: built on, one deeper", () => {
  const a = m("a"), b = m("b", { parent: "a", detail: { depth: 1, toLsn: 5000 } });
  const c = incrementalParent([a, b], "node2", SRC, 6);
  assert.equal(c.parent, { id: "b", toLsn: 5000, depth: 2 });
});
P("another node, another datadir, a bad newest, no LSN, a full chain: full, each with why", () => {
  const a = m("a");
  assert.match(incrementalParent([a], "node3", SRC, 6).why, /taken on node2 from another datadir/);
  assert.match(incrementalParent([a], "node2", "ibdata1:43:1", 6).why, /another datadir/);
  assert.match(incrementalParent([m("x", { state: "bad" })], "node2", SRC, 6).why, /cannot be built on \(backup x is bad\)/);
  assert.match(incrementalParent([m("y", { detail: { toLsn: "12" } })], "node2", SRC, 6).why, /records no checkpoint LSN/);
  assert.match(incrementalParent([m("z", { parent: null, detail: { depth: 3 } })], "node2", SRC, 3).why, /ends a chain of 3/);
  assert.is(incrementalParent([m("w", { kind: "redis" })], "node2", SRC, 6).parent, null, "only MySQL backups count");
});

const C = suite("restoreChain");
C("full first, then each incremental", () => {
  const all = [m("c", { parent: "b" }), m("a"), m("b", { parent: "a" })];
  const r = restoreChain(all, "c");
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.chain.map((x) => x.id), ["a", "b", "c"]);
});
C("a missing, bad or looping link: refused, named", () => {
  const e = (all: Manifest[], id: string) => { const r = restoreChain(all, id); return r.ok ? "" : r.error; };
  assert.match(e([m("b", { parent: "a" })], "b"), /needs a, which is not there/);
  assert.match(e([m("a", { state: "bad" }), m("b", { parent: "a" })], "b"), /backup a \(in the chain of b\) is bad/);
  assert.match(e([m("a", { parent: "b" }), m("b", { parent: "a" })], "b"), /loops/);
  assert.match(e([], "q"), /no backup q/);
  assert.equal(restorable([m("a", { state: "bad" }), m("b", { parent: "a" }), m("c")]).map((x) => x.id), ["c"]);
});

const K = suite("parseCheckpoints");
K("mariadb-backup's xtrabackup_checkpoints; anything else is null", () => {
  assert.equal(parseCheckpoints("backup_type = incremental\nfrom_lsn = 44404\nto_lsn = 45000\nlast_lsn = 49031\n"), { type: "incremental", fromLsn: 44404, toLsn: 45000 });
  assert.is(parseCheckpoints(""), null);
  assert.is(parseCheckpoints("backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = x\n"), null);
  assert.is(parseCheckpoints("garbage"), null);
});

P.run();
C.run();
K.run();
