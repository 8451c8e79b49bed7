// health.ts: the rise/fall state machine (pure) and the checker's scheduling on a virtual
// clock with a scripted probe. The real HTTP probe runs in test/broker/portal.test.ts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger, TimerHandle, Timers } from "../../agent/env/env.ts";
import { HealthChecker, HealthTable, nextState, type HealthTransition, type ProbeResult } from "../../agent/resources/health.ts";
import type { HttpService } from "../../agent/resources/portal-render.ts";

const svc = (rise = 2, fall = 3): HttpService => ({
  name: "api", listen: "8080", backends: ["10.0.0.1:80", "10.0.0.2:80"], health: { path: "/h", intervalMs: 100, rise, fall, timeoutMs: 50 },
});

const Table = suite("HealthTable");

Table("first result decides; unknown backends stay in the upstream", () => {
  const t = new HealthTable([svc()]);
  assert.equal(t.snapshot(), { api: ["10.0.0.1:80", "10.0.0.2:80"] });
  assert.equal(t.record("api", "10.0.0.1:80", true, "200", 1), { service: "api", backend: "10.0.0.1:80", from: "unknown", to: "up", after: 1, detail: "200", at: 1 });
  assert.equal(t.record("api", "10.0.0.2:80", false, "ECONNREFUSED", 2)?.to, "down");
  assert.equal(t.snapshot(), { api: ["10.0.0.1:80"] });
});

Table("up -> down only after `fall` consecutive failures; a pass resets the count", () => {
  const t = new HealthTable([svc(2, 3)]);
  const b = "10.0.0.1:80";
  t.record("api", b, true, "200", 0);
  assert.is(t.record("api", b, false, "503", 1), null);
  assert.is(t.record("api", b, false, "503", 2), null);
  assert.is(t.record("api", b, true, "200", 3), null); // reset
  assert.is(t.record("api", b, false, "503", 4), null);
  assert.is(t.record("api", b, false, "503", 5), null);
  const tr = t.record("api", b, false, "timeout after 50 ms", 6);
  assert.equal(tr, { service: "api", backend: b, from: "up", to: "down", after: 3, detail: "timeout after 50 ms", at: 6 });
  assert.equal(t.healthy("api"), ["10.0.0.2:80"]);
  assert.is(t.list().find((r) => r.backend === b)?.since, 6);
});

Table("down -> up only after `rise` consecutive passes", () => {
  const t = new HealthTable([svc(2, 1)]);
  const b = "10.0.0.2:80";
  t.record("api", b, false, "503", 0);
  assert.is(t.record("api", b, true, "200", 1), null);
  assert.is(t.record("api", b, false, "503", 2), null);
  assert.is(t.record("api", b, true, "200", 3), null);
  assert.equal(t.record("api", b, true, "200", 4)?.to, "up");
  assert.is(t.record("api", b, true, "200", 5), null);
  assert.is(t.state("api", b), "up");
});

Table("an unknown backend is an error, not a silent entry", () => {
  assert.throws(() => new HealthTable([svc()]).record("api", "10.9.9.9:80", true, "200", 0), /no backend 10.9.9.9:80/);
});

Table("nextState table", () => {
  assert.is(nextState("unknown", 1, 5, 5), "up");
  assert.is(nextState("unknown", -1, 5, 5), "down");
  assert.is(nextState("up", -2, 2, 3), "up");
  assert.is(nextState("up", -3, 2, 3), "down");
  assert.is(nextState("down", 1, 2, 3), "down");
  assert.is(nextState("down", 2, 2, 3), "up");
});

/** Timers on a virtual clock: advance(ms) fires what is due, in order. */
class FakeTimers implements Timers {
  now = 0;
  private seq = 0;
  private readonly due: { at: number; seq: number; every: number | null; fn: () => void; live: boolean }[] = [];
  every(ms: number, fn: () => void): TimerHandle {
    return this.add(ms, ms, fn);
  }
  after(ms: number, fn: () => void): TimerHandle {
    return this.add(ms, null, fn);
  }
  private add(ms: number, every: number | null, fn: () => void): TimerHandle {
    const t = { at: this.now + ms, seq: this.seq++, every, fn, live: true };
    this.due.push(t);
    return { cancel: () => void (t.live = false) };
  }
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const next = this.due.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.now = next.at;
      if (next.every === null) next.live = false;
      else next.at += next.every;
      next.fn();
      await flush();
    }
    this.now = end;
  }
  live(): number {
    return this.due.filter((t) => t.live).length;
  }
}
const flush = () => new Promise<void>((r) => setImmediate(r));
const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };

const Checker = suite("HealthChecker");

Checker("probes at once and every interval; reports transitions with the virtual time", async () => {
  const timers = new FakeTimers();
  const calls: [number, string][] = [];
  let failing = false;
  const seen: HealthTransition[] = [];
  const c = new HealthChecker({
    services: [svc(2, 3)], timers, now: () => timers.now, log: nolog, onTransition: (t) => seen.push(t),
    probe: async (b): Promise<ProbeResult> => {
      calls.push([timers.now, b]);
      return b === "10.0.0.2:80" && failing ? { ok: false, detail: "503", ms: 1 } : { ok: true, detail: "200", ms: 1 };
    },
  });
  c.start();
  await timers.advance(0);
  assert.equal(calls, [[0, "10.0.0.1:80"], [0, "10.0.0.2:80"]]);
  assert.equal(seen.map((t) => `${t.backend} ${t.from}->${t.to}@${t.at}`), ["10.0.0.1:80 unknown->up@0", "10.0.0.2:80 unknown->up@0"]);
  failing = true;
  await timers.advance(250); // failures at 100, 200
  assert.is(seen.length, 2);
  await timers.advance(50); // third at 300
  assert.equal(seen.slice(2).map((t) => `${t.backend} ${t.from}->${t.to}@${t.at} after ${t.after}`), ["10.0.0.2:80 up->down@300 after 3"]);
  assert.equal(c.snapshot(), { api: ["10.0.0.1:80"] });
  failing = false;
  await timers.advance(200); // passes at 400, 500
  assert.equal(seen.slice(3).map((t) => `${t.to}@${t.at}`), ["up@500"]);
  c.stop();
  assert.is(timers.live(), 0);
  const n = calls.length;
  await timers.advance(1000);
  assert.is(calls.length, n, "no probe after stop()");
});

Checker("one probe in flight per backend: a slow probe skips rounds instead of piling up", async () => {
  const timers = new FakeTimers();
  let started = 0;
  let release: (r: ProbeResult) => void = () => {};
  const c = new HealthChecker({
    services: [{ ...svc(), backends: ["10.0.0.1:80"] }], timers, now: () => timers.now, log: nolog,
    probe: () => {
      started++;
      return new Promise((r) => (release = r));
    },
  });
  c.start();
  await timers.advance(350);
  assert.is(started, 1);
  release({ ok: false, detail: "timeout after 50 ms", ms: 50 });
  await flush();
  assert.is(c.table.state("api", "10.0.0.1:80"), "down");
  await timers.advance(100);
  assert.is(started, 2);
  c.stop();
});

Checker("a probe that throws counts as a failure", async () => {
  const timers = new FakeTimers();
  const c = new HealthChecker({
    services: [{ ...svc(), backends: ["10.0.0.1:80"] }], timers, now: () => timers.now, log: nolog,
    probe: async () => {
      throw new Error("boom");
    },
  });
  c.start();
  await timers.advance(0);
  assert.is(c.table.list()[0]?.lastDetail, "probe failed: boom");
  assert.is(c.table.state("api", "10.0.0.1:80"), "down");
  c.stop();
});

Table.run();
Checker.run();
