// `bollard backup list|status` and `bollard restore` on catalogs written here (every kind, a bad
// one, a half one, an unreadable one, an archive status): what an operator sees, and the
// refusals of restore (a point no backup covers, --replace, bad arguments).
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backupCommand, restoreCommand } from "../../agent/cli/backup-cmd.ts";
import type { Manifest } from "../../agent/backup/manifest.ts";
import type { CommandContext } from "../../agent/cli/types.ts";

let dir = "";
const out: string[] = [], err: string[] = [];
const ctx = (): CommandContext => ({ configPath: join(dir, "bollard.yaml"), configGiven: true, io: { out: (t) => out.push(t), err: (t) => err.push(t) }, build: { version: "0", rev: "x" } });
const run = async (cmd: typeof backupCommand, ...args: string[]) => { out.length = 0; err.length = 0; const code = await cmd.run(args, ctx()); return { code, out: out.join("\n"), err: err.join("\n") }; };

const m = (over: Partial<Manifest>): Manifest => ({
  id: "x", kind: "mysql", name: "mysql", node: "node2", storedOn: "node3", startedAt: "2026-12-06T10:00:00.000Z",
  finishedAt: "2026-12-06T10:00:05.000Z", bytes: 5_000_000, parent: null, state: "complete", detail: { gtid: "0-1-42" }, ...over,
});
const put = (node: string, man: Manifest | null, name?: string, text?: string) => {
  const d = join(dir, node, "backup", man?.kind ?? "mysql", name ?? man!.id);
  mkdirSync(d, { recursive: true });
  if (man || text) writeFileSync(join(d, "manifest.json"), text ?? JSON.stringify(man));
};

/** Appends a vms: section whose backups are kept in <dir>/vm-chains on `node`. */
const withVms = (node: string) => appendFileSync(join(dir, "bollard.yaml"), `vms:
  nodes:
    node1: { address: 127.0.2.1, memory_mb: 1024 }
    node2: { address: 127.0.2.2, memory_mb: 1024 }
    node3: { address: 127.0.2.3, memory_mb: 1024 }
  backup: { dir: ${dir}/vm-chains, node: ${node} }
`);

const C = suite("backup and restore commands");
C.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-backup-cli-"));
  writeFileSync(join(dir, "bollard.yaml"), `
cluster:
  name: port-fms
  node: node1
  members:
    - { name: node1, address: "127.0.1.1:1883" }
    - { name: node2, address: "127.0.1.2:1883" }
    - { name: node3, address: "127.0.1.3:1883" }
bus:
  password: s3cret
state_dir: ${dir}
ha:
  nodes:
    node1: { address: 127.0.2.1 }
    node2: { address: 127.0.2.2 }
    node3: { address: 127.0.2.3 }
mysql:
  user: bollard
  password_file: ${dir}/pw
  repl_password_file: ${dir}/pw
backup:
  target: ${dir}/{node}/backup
`);
  put("node3", m({ id: "m1" }));
  put("node1", m({ id: "m2", node: "node3", storedOn: "node1", startedAt: "2026-12-06T11:00:00.000Z", finishedAt: "2026-12-06T11:00:09.000Z", state: "bad", detail: { gtid: "0-1-90", verify: { ok: false, error: "checksums: data/app/t.ibd changed" } } }));
  put("node3", m({ id: "v1", kind: "vm", name: "k8s-cp1", detail: { disks: ["vda"] } }));
  put("node3", null, "m3.tmp");
  put("node3", null, "m4", "{broken");
  mkdirSync(join(dir, "node3", "backup", "binlog"), { recursive: true });
  writeFileSync(join(dir, "node3", "backup", "binlog", "status.json"), JSON.stringify({ node: "node3", primary: "node1", segment: "s", running: true, lastGtid: "0-1-99", behind: 0, lagS: 0.3, caughtUpAt: "2026-12-06T11:30:00.000Z", caughtUpSeq: 99, gap: null, error: null, updatedAt: "2026-12-06T11:30:00.000Z" }));
});
C.after.each(() => rmSync(dir, { recursive: true, force: true }));

C("list: every kind from every node, the bad one marked, the half and broken ones apart", async () => {
  const r = await run(backupCommand, "list");
  assert.is(r.code, 0, r.err);
  const lines = r.out.split("\n");
  assert.match(lines[1]!, /^mysql +m1 +mysql +node2 +node3 .* 5\.0 MB +complete$/);
  assert.match(r.out, /vm +v1 +k8s-cp1/);
  assert.match(r.out, /m2 .*BAD \(checksums: data\/app\/t.ibd changed\)/);
  assert.match(r.out, /in progress or abandoned \(not a backup\): mysql\/m3/);
  assert.match(r.out, /unreadable \(not a backup\): .*m4: no readable manifest.json|unreadable \(not a backup\): .*m4: manifest: not JSON/);
  const j = JSON.parse((await run(backupCommand, "list", "--json")).out);
  assert.equal(j.backups.map((b: { id: string; good: boolean }) => `${b.id}:${b.good}`), ["m1:true", "v1:true", "m2:false"]);
});
C("list: VM chains kept in vms.backup.dir (bollard vm backup) are listed with the rest", async () => {
  withVms("node2");
  const d = join(dir, "vm-chains", "vm", "vb1");
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "manifest.json"), JSON.stringify(m({ id: "vb1", kind: "vm", name: "db1", node: "node1", storedOn: "node2", detail: { disks: ["root"], consistency: "crash-consistent" } })));
  const r = await run(backupCommand, "list");
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^vm +vb1 +db1 +node1 +node2 /m);
  assert.match(r.out, /vm +v1 +k8s-cp1/, "and the ones in the nodes' targets");
});
C("status: last good per kind, the archive, space per node", async () => {
  const r = await run(backupCommand, "status");
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^mysql +last good m1 \(.* ago\); 1 good, 1 bad$/m);
  assert.match(r.out, /binlog archive on node3 from node1: streaming, last 0-1-99, lag 0.3 s, behind 0 trx/);
  assert.match(r.out, /space: node1 5\.0 MB, node2 0\.0 MB, node3 10\.0 MB/);
  const j = JSON.parse((await run(backupCommand, "status", "--json")).out);
  assert.is(j.kinds.find((k: { kind: string }) => k.kind === "mysql").lastGood, "m1");
});
C("restore: a point no backup covers is refused with the range; --replace is refused with what is missing", async () => {
  const early = await run(restoreCommand, "mysql", "--to-time", "2026-12-06T09:00:00Z", "--dry-run");
  assert.is(early.code, 1);
  assert.match(early.err, /^bollard: restore: no backup covers 2026-12-06T09:00:00Z: restorable points: from 2026-12-06T10:00:05Z \(gtid 0-1-42, base backup m1\) to 2026-12-06T10:00:05Z \(gtid 0-1-42\)$/);
  const dry = await run(restoreCommand, "mysql", "--to-gtid", "0-1-42", "--dry-run");
  assert.is(dry.code, 0, dry.err);
  assert.match(dry.out, /^plan: base backup m1 \(gtid 0-1-42\), then 0 transaction\(s\) from 0 archived binlog file\(s\), reaching gtid 0-1-42$/);
});
C("restore --replace: refused without the cluster's name typed, or with another; --abort likewise; misplaced options", async () => {
  const none = await run(restoreCommand, "mysql", "--to-gtid", "0-1-42", "--replace");
  assert.is(none.code, 2);
  assert.match(none.err, /^bollard: restore: --replace makes the restored point the data of every node and stops writes meanwhile: it needs the cluster's name typed: --confirm port-fms$/);
  const wrong = await run(restoreCommand, "mysql", "--to-gtid", "0-1-42", "--replace", "--confirm", "mysql");
  assert.is(wrong.code, 2);
  assert.match(wrong.err, /--confirm port-fms, got "mysql"$/);
  const abort = await run(restoreCommand, "mysql", "--replace", "--abort");
  assert.is(abort.code, 2);
  assert.match(abort.err, /--replace --abort lets writes resume on whatever the primary holds: it needs the cluster's name typed: --confirm port-fms$/);
  for (const args of [["mysql", "--replace", "--abort", "--confirm", "port-fms", "--to-gtid", "0-1-42"], ["mysql", "--to-gtid", "0-1-42", "--confirm", "port-fms"], ["mysql", "--abort"], ["redis", "--backup", "r1", "--replace", "--confirm", "port-fms"]]) {
    const r = await run(restoreCommand, ...args);
    assert.is(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, /--abort takes no point|go with --replace|for mysql only/, args.join(" "));
  }
  // typed right: past the refusals, to the agent (none runs here); nothing restored
  const ok = await run(restoreCommand, "mysql", "--to-gtid", "0-1-42", "--replace", "--confirm", "port-fms");
  assert.is(ok.code, 1);
  assert.match(ok.err, /the agent does not answer on .*: --replace goes through it/);
  const ab = await run(restoreCommand, "mysql", "--replace", "--abort", "--confirm", "port-fms");
  assert.is(ab.code, 1);
  assert.match(ab.err, /the agent does not answer .*--abort goes through it/);
  // a dry run needs no confirmation, and says the plan before it asks the agent
  const dry = await run(restoreCommand, "mysql", "--to-gtid", "0-1-42", "--replace", "--dry-run");
  assert.match(dry.out, /^plan: base backup m1/);
  assert.match(dry.err, /the agent does not answer/);
});
C("backup list shows a pinned backup; backup unpin unpins it", async () => {
  put("node3", m({ id: "p1", startedAt: "2026-12-06T12:00:00.000Z", finishedAt: "2026-12-06T12:00:05.000Z", pinned: "old data before restore --replace r1" }));
  const l = await run(backupCommand, "list");
  assert.match(l.out, /p1 .* complete PINNED \(old data before restore --replace r1\)/);
  assert.match((await run(backupCommand, "list", "--json")).out, /"pinned":"old data before restore --replace r1"/);
  const u = await run(backupCommand, "unpin", "p1");
  assert.is(u.code, 0, u.err);
  assert.match(u.out, /backup p1 unpinned \(was: old data before restore --replace r1\)/);
  assert.not.match((await run(backupCommand, "list")).out, /PINNED/);
  assert.is((await run(backupCommand, "unpin", "nope")).code, 1);
});
C("bad arguments are usage errors; a bad backup is not restored", async () => {
  for (const args of [["mysql"], ["mysql", "--to-time", "x"], ["mysql", "--to-time", "2026-12-06T10:00:00Z", "--to-gtid", "0-1-1"], ["redis"], ["pg"], ["mysql", "--frob"]]) {
    const r = await run(restoreCommand, ...args);
    assert.is(r.code, 2, `${args.join(" ")}: ${r.err}`);
  }
  put("node3", m({ id: "r1", kind: "redis", name: "redis", state: "bad", detail: { keys: 3 } }));
  const r = await run(restoreCommand, "redis", "--backup", "r1");
  assert.is(r.code, 1);
  assert.match(r.err, /redis backup r1 is bad: its verification failed/);
  assert.is((await run(backupCommand, "now", "pg")).code, 2);
  assert.is((await run(backupCommand, "list", "extra")).code, 2);
});
C("backup now vm:NAME: refused before anything is committed without VM backups or with a name that is no VM", async () => {
  const none = await run(backupCommand, "now", "vm:app");
  assert.is(none.code, 2);
  assert.match(none.err, /no vms.backup section in the config/);
  withVms("node1");
  const unknown = await run(backupCommand, "now", "vm:app");
  assert.is(unknown.code, 2, unknown.err);
  assert.match(unknown.err, /no VM "app" \(known: none\)/, unknown.err);
});

C.run();

