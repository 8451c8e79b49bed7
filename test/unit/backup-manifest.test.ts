// The backup catalog's manifest (agent/backup/manifest.ts): parsing bad input into clear errors,
// listing a target with finished, half-written and broken backups of every kind.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { finalize, isGood, listBackups, newId, parseManifest, setState, tmpDir, writeManifest, type Manifest } from "../../agent/backup/manifest.ts";

const m = (over: Partial<Manifest> = {}): Manifest => ({
  id: "20261206T100000000Z-node2", kind: "mysql", name: "mysql", node: "node2", storedOn: "node3",
  startedAt: "2026-12-06T10:00:00.000Z", finishedAt: "2026-12-06T10:00:05.000Z", bytes: 1234,
  parent: null, state: "complete", detail: { gtid: "0-1-42" }, ...over,
});

const Parse = suite("parseManifest");
Parse("a valid manifest parses to the same object", () => {
  const r = parseManifest(JSON.stringify(m()));
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.value, m());
});
Parse("not JSON", () => {
  const r = parseManifest("{\"id\": ");
  assert.not.ok(r.ok);
  if (!r.ok) assert.match(r.error, /not JSON/);
});
Parse("each bad field is named", () => {
  const cases: [unknown, RegExp][] = [
    [{ ...m(), kind: "tape" }, /kind/],
    [{ ...m(), state: "done" }, /state/],
    [{ ...m(), bytes: -1 }, /bytes/],
    [{ ...m(), bytes: "12" }, /bytes/],
    [{ ...m(), id: "../etc" }, /id: expected an id/],
    [{ ...m(), startedAt: "yesterday" }, /startedAt: expected an ISO 8601/],
    [{ ...m(), node: "Node 2" }, /node/],
    [{ ...m(), extra: 1 }, /extra|Unrecognized/],
    [{ ...m(), finishedAt: "2026-12-06T09:00:00.000Z" }, /finishedAt is before startedAt/],
    [[1, 2], /root|expected object/i],
    [null, /root|expected object/i],
  ];
  for (const [value, re] of cases) {
    const r = parseManifest(JSON.stringify(value));
    assert.not.ok(r.ok, JSON.stringify(value));
    if (!r.ok) assert.match(r.error, re);
  }
});
Parse.run();

const err = (p: Promise<unknown>) => p.then(() => "resolved", (e: Error) => e.message);

const List = suite("listBackups");
let dir = "";
List.before.each(() => { dir = mkdtempSync(join(tmpdir(), "bollard-catalog-")); });
List.after.each(() => rmSync(dir, { recursive: true, force: true }));

List("a missing target is an empty listing", async () => {
  const l = await listBackups(join(dir, "nope"));
  assert.equal(l, { backups: [], errors: [], inProgress: [] });
});
List("finished backups of every kind, oldest first; tmp dirs are in progress; broken ones are errors", async () => {
  const put = (kind: string, name: string, text: string | null) => {
    mkdirSync(join(dir, kind, name), { recursive: true });
    if (text !== null) writeFileSync(join(dir, kind, name, "manifest.json"), text);
  };
  const a = m({ id: "b-2", startedAt: "2026-12-06T11:00:00.000Z", finishedAt: "2026-12-06T11:00:01.000Z" });
  const b = m({ id: "a-1" });
  const v = m({ id: "vm-1", kind: "vm", name: "k8s-cp1", parent: "vm-0", state: "verified", detail: { disks: ["vda"] } });
  put("mysql", "b-2", JSON.stringify(a));
  put("mysql", "a-1", JSON.stringify(b));
  put("vm", "vm-1", JSON.stringify(v));
  put("mysql", "c-3.tmp", null);
  put("mysql", "d-4", null);
  put("redis", "e-5", "garbage");
  put("redis", "f-6", JSON.stringify(m({ id: "other", kind: "redis" })));
  const l = await listBackups(dir);
  assert.equal(l.backups.map((x) => x.manifest.id), ["a-1", "vm-1", "b-2"]);
  assert.equal(l.inProgress.map((x) => `${x.kind}/${x.id}`), ["mysql/c-3"]);
  assert.equal(l.errors.length, 3);
  assert.match(l.errors.map((e) => e.error).join("\n"), /no readable manifest.json[\s\S]*not JSON[\s\S]*directory is redis\/f-6/);
});
List("finalize renames tmp to id only with a matching manifest; setState keeps the rest", async () => {
  const t = tmpDir(dir, "mysql", "x-1");
  mkdirSync(t, { recursive: true });
  assert.match(await err(finalize(dir, "mysql", "x-1")), /ENOENT/);
  await writeManifest(t, m({ id: "y-1" }));
  assert.match(await err(finalize(dir, "mysql", "x-1")), /manifest is for mysql\/y-1/);
  await writeManifest(t, m({ id: "x-1" }));
  const to = await finalize(dir, "mysql", "x-1");
  assert.equal((await listBackups(dir)).backups.map((b) => b.manifest.id), ["x-1"]);
  const bad = await setState(to, "bad", { why: "checksum" });
  assert.is(bad.state, "bad");
  assert.not.ok(isGood(bad));
  assert.equal(bad.detail, { gtid: "0-1-42", why: "checksum" });
});
List("newId sorts by time", () => {
  assert.is(newId(Date.UTC(2026, 11, 6, 10, 30, 15, 123), "node2"), "20261206T103015123Z-node2");
  assert.ok(newId(1000, "n") < newId(2000, "n"));
});
List.run();
