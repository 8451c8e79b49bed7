// The web console's live hub (agent/web/live.ts): no timer at all while nobody watches, one
// while any stream is open; each stream gets init, then only what changed; password hashes
// never leave in a status or an event. Virtual timers: nothing here waits.
import { EventEmitter } from "node:events";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { emptyHardware, type Model } from "../../agent/console/model.ts";
import type { DataSource } from "../../agent/console/source.ts";
import { LiveHub } from "../../agent/web/live.ts";

const HASH = "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

class FakeRes extends EventEmitter {
  chunks: string[] = [];
  destroyed = false;
  writableLength = 0;
  code = 0;
  writeHead(code: number) { this.code = code; }
  write(s: string) { this.chunks.push(s); return true; }
  end() { this.destroyed = true; this.emit("close"); }
  text() { return this.chunks.join(""); }
}

function fixture() {
  const timers: { ms: number; fn: () => void; live: boolean }[] = [];
  let now = 0;
  const model: Model = {
    now: 0, self: "node1", members: ["node1"], vip: null, addresses: {},
    status: { live: true, wall: 0, why: null, body: { agent: {} as never, cluster: "lab", bus: {}, wall: 0, view: {
      node: "node1", role: "leader", term: 1, leader: "node1", quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true, peers: [], counters: {},
      config: { epoch: 1, term: 1, members: [{ name: "node1", bus: "x", pass: "secret" }], assignments: {}, flags: { "user:admin": `admin ${HASH}` } },
      committed: { epoch: 1, term: 1, members: [{ name: "node1", bus: "x", pass: "secret" }], assignments: {}, flags: { "user:admin": `admin ${HASH}` } },
    } as never } },
    alarms: { available: true, active: [], error: null }, logs: { node: "", lines: [], error: null },
    events: { lines: [{ ts: "2026-12-06T08:00:00.000Z", kind: "propose", node: "node1", term: 1, detail: `proposing epoch 2: user:admin=admin ${HASH}` }], errors: [] }, hw: emptyHardware(),
  };
  const src = { model, ticks: 0, tick: () => void src.ticks++, pollAlarms: async () => undefined } as unknown as DataSource & { ticks: number };
  const hub = new LiveHub(src, () => ({ node: "node1" }), {
    every: (ms, fn) => {
      const t = { ms, fn, live: true };
      timers.push(t);
      return { cancel: () => (t.live = false) };
    },
    now: () => now,
  });
  return { hub, src, timers, live: () => timers.filter((t) => t.live).length, advance: (ms: number) => { now += ms; for (const t of timers.filter((x) => x.live)) t.fn(); } };
}

const L = suite("live hub");

L("no timer before the first stream and after the last one closes; one while any is open", () => {
  const f = fixture();
  assert.is(f.live(), 0);
  const a = new FakeRes();
  const b = new FakeRes();
  f.hub.add(a as never, false);
  f.hub.add(b as never, false);
  assert.is(f.live(), 1);
  assert.is(f.hub.watching, 2);
  a.end();
  assert.is(f.live(), 1);
  b.end();
  assert.is(f.live(), 0);
  assert.is(f.hub.watching, 0);
  const ticks = f.src.ticks;
  f.advance(1000);
  assert.is(f.src.ticks, ticks, "nothing polls the agent with nobody watching");
});

L("a stream gets init and status at once, then only what changed, and a keepalive", () => {
  const f = fixture();
  const a = new FakeRes();
  f.hub.add(a as never, false);
  assert.is(a.code, 200);
  assert.match(a.text(), /^event: init\n/);
  assert.match(a.text(), /event: status\n/);
  assert.match(a.text(), /event: events\n/);
  const n = a.chunks.length;
  f.advance(250);
  assert.is(a.chunks.length, n, "nothing changed, nothing sent");
  f.advance(5000);
  assert.ok(a.chunks.slice(n).some((c) => c.startsWith(": keepalive") || c.startsWith("event: status")));
  a.end();
});

L("no password hash and no bus password in what a stream carries", () => {
  const f = fixture();
  const a = new FakeRes();
  f.hub.add(a as never, false);
  assert.not.ok(a.text().includes("BBBBBBBB"), "hash");
  assert.not.ok(a.text().includes("secret"), "bus password");
  assert.match(a.text(), /hash hidden/);
  a.end();
});

L.run();
