// `bollard vm backup|restore` refusals before anything is touched (cli/vm-backup-cmd.ts): no
// backup target configured, a VM not running here, a missing --backup, an unknown backup (with
// those that exist), a chain with a bad link, --as naming no defined VM, disks that do not match.
// (Taking and restoring for real: test/broker/vm-backup.test.ts and the lab.)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { vmCommand } from "../../agent/cli/vm-cmd.ts";

const dir = mkdtempSync(join(tmpdir(), "bollard-vm-backup-cmd-"));
const yaml = (backup: boolean) => `
cluster:
  name: port-fms
  node: node1
  members:
    - { name: node1, address: "127.0.0.1:1883" }
bus:
  password: s3cret
control:
  socket: ${dir}/nothing.sock
vms:
  dir: ${dir}/vms
  nodes:
    node1: { address: 127.0.0.1, memory_mb: 1024 }
  disks:
    db-d: { size_mb: 32 }
    big-d: { size_mb: 64 }
  machines:
    db: { memory_mb: 128, disks: [db-d] }
    big: { memory_mb: 128, disks: [big-d] }
${backup ? `  backup: { dir: ${dir}/bk, node: node1 }\n` : ""}`;

async function run(args: string, backup = true): Promise<{ code: number; out: string; err: string }> {
  const f = join(dir, backup ? "b.yaml" : "nb.yaml");
  writeFileSync(f, yaml(backup));
  let out = "";
  let err = "";
  const code = await vmCommand.run(args.split(" "), { configPath: f, configGiven: true, io: { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) }, build: { version: "0", rev: "0" } });
  return { code, out, err };
}

function manifest(id: string, parent: string | null, state = "complete", name = "db"): void {
  mkdirSync(join(dir, "bk", "vm", id), { recursive: true });
  writeFileSync(join(dir, "bk", "vm", id, "manifest.json"), JSON.stringify({
    id, kind: "vm", name, node: "node1", storedOn: "node1", startedAt: "2026-12-06T10:00:00.000Z", finishedAt: "2026-12-06T10:00:01.000Z", bytes: 1, parent, state,
    detail: { disks: [{ name: "db-d", file: "db-d.qcow2", sizeMb: 32, bytes: 1 }], consistency: "crash-consistent", consistencyWhy: "no guest agent answered" },
  }));
}

const s = suite("vm backup|restore: refusals");
s("no vms.backup: both refuse, saying so", async () => {
  for (const a of ["backup db", "restore db --backup x"]) {
    const r = await run(a, false);
    assert.is(r.code, 2, a);
    assert.match(r.err, /no vms\.backup in the config/);
  }
});
s("backup of a VM that does not run here", async () => {
  const r = await run("backup db");
  assert.is(r.code, 1);
  assert.match(r.err, /db does not run on this node/);
});
s("restore: --backup missing, unknown, a bad link, --as unknown, disks that differ; --full elsewhere", async () => {
  assert.match((await run("restore db")).err, /expected --backup ID/);
  manifest("db-1", null, "bad");
  manifest("db-2", "db-1");
  manifest("other-1", null, "complete", "big");
  assert.match((await run("restore db --backup db-9")).err, /no backup db-9 \(known: db-1, db-2, other-1\)/);
  assert.match((await run("restore db --backup db-2")).err, /backup db-1 \(in the chain of db-2\) is marked bad/);
  assert.match((await run("restore db --backup db-2 --as ghost")).err, /--as: no VM "ghost" in vms\.machines/);
  manifest("db-1", null);
  const r = await run("restore db --backup db-2 --as big");
  assert.is(r.code, 2);
  assert.match(r.err, /big's disks \(big-d 64 MB\) are not the backup's \(db-d 32 MB\)/);
  assert.match((await run("restore db --backup other-1")).err, /backup other-1 is of big, not of db/);
  assert.match((await run("start db --full")).err, /--full goes with backup/);
});
s.after(() => rmSync(dir, { recursive: true, force: true }));
s.run();
