// FileStore: the node's term, vote and config register on disk (DESIGN §4).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { PersistedState } from "../../agent/env/env.ts";
import { FileStore, StateFileError, atomicWrite } from "../../agent/env/store.ts";

const cfg = (epoch: number, term: number) => ({
  epoch,
  term,
  members: [
    { name: "node1", bus: "198.18.1.1:1883" },
    { name: "node2", bus: "198.18.1.2:1883" },
  ],
  assignments: { mysql: "node1" },
  flags: {},
});
const STATE: PersistedState = { term: 7, votedFor: "node2", config: cfg(12, 7), committed: cfg(11, 6) };

const Store = suite("FileStore");
let dir = "";
Store.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-store-"));
});
Store.after.each(() => rmSync(dir, { recursive: true, force: true }));

Store("no file: no state", () => {
  assert.is(new FileStore(dir).load(), null);
});

Store("round trip, and a second save replaces the first", () => {
  const store = new FileStore(join(dir, "state")); // created on first save
  store.save(STATE);
  assert.equal(new FileStore(join(dir, "state")).load(), STATE);
  const next = { ...STATE, term: 8, votedFor: null };
  store.save(next);
  assert.equal(new FileStore(join(dir, "state")).load(), next);
  assert.equal(readdirSync(join(dir, "state")), ["cluster.json"]);
});

Store("a corrupt file is an error naming the file, never a blank start", () => {
  const store = new FileStore(dir);
  writeFileSync(store.file, '{"format":1,"term":3,');
  try {
    store.load();
    assert.unreachable("load() must throw");
  } catch (e) {
    assert.instance(e, StateFileError);
    assert.match((e as Error).message, `${store.file}: not valid JSON`);
    assert.match((e as Error).message, "does not start on a corrupt state file");
  }
});

Store("valid JSON that is not a state file is an error", () => {
  const store = new FileStore(dir);
  writeFileSync(store.file, JSON.stringify({ format: 1, term: -1, votedFor: null, config: cfg(1, 1), committed: cfg(1, 1) }));
  assert.throws(() => store.load(), (e: Error) => e instanceof StateFileError && e.message.includes("term"));
  writeFileSync(store.file, "");
  assert.throws(() => store.load(), (e: Error) => e instanceof StateFileError && e.message.includes(store.file));
});

Store("a temp file left behind by a crash is ignored, then replaced", () => {
  const store = new FileStore(dir);
  store.save(STATE);
  writeFileSync(`${store.file}.tmp`, '{"format":1,"term":99'); // crash mid-write
  assert.equal(store.load(), STATE);
  store.save({ ...STATE, term: 9 });
  assert.is(store.load()!.term, 9);
  assert.not.ok(existsSync(`${store.file}.tmp`));
});

Store("the file is versioned JSON", () => {
  const store = new FileStore(dir);
  store.save(STATE);
  const raw = JSON.parse(readFileSync(store.file, "utf8"));
  assert.is(raw.format, 1);
  assert.is(raw.votedFor, "node2");
});

Store("atomicWrite without durability still replaces by rename", () => {
  const f = join(dir, "status.json");
  atomicWrite(f, "one", { durable: false });
  atomicWrite(f, "two", { durable: false });
  assert.is(readFileSync(f, "utf8"), "two");
  assert.equal(readdirSync(dir), ["status.json"]);
});

Store.run();
