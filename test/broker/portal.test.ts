// The portal against a real nginx (issue 4 item 3): nginx on 127.0.4.1, stream upstreams to
// small TCP servers on 127.0.4.2 and 127.0.4.3 that greet with their name, and two HTTP
// backends with active health checks. Prints the figures it measures; bounds are generous.
// Everything is started and stopped by PID; the suite ends by checking nothing is left.
import { createServer as httpServer, get, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { realTimers } from "../../agent/env/real.ts";
import { HealthChecker, type HealthTransition } from "../../agent/resources/health.ts";
import { PortalDriver, alive } from "../../agent/resources/portal.ts";
import { STREAM_FILE, type PortalDesired } from "../../agent/resources/portal-render.ts";
import { DriverError } from "../../agent/resources/types.ts";

const NGINX = "127.0.4.1";
const A = "127.0.4.2";
const B = "127.0.4.3";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fig = (what: string, v: number) => console.log(`    figure: ${what} = ${v.toFixed(1)} ms`);
const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };

function listen<T extends Server | HttpServer>(s: T, host: string, port = 0): Promise<T> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, host, () => resolve(s));
  });
}
const portOf = (s: Server | HttpServer) => (s.address() as { port: number }).port;

/** A free port on `host` (bound then closed: nothing else on 127.0.4.x races for it). */
async function freePort(host: string): Promise<number> {
  const s = await listen(createServer(), host);
  const p = portOf(s);
  await new Promise((r) => s.close(r));
  return p;
}

/** A TCP server that greets each connection with `name\n`. */
function greeter(name: string, sockets: Set<Socket>): Server {
  return createServer((c) => {
    sockets.add(c);
    c.on("close", () => sockets.delete(c));
    c.on("error", () => {});
    c.write(`${name}\n`);
  });
}

interface Conn {
  sock: Socket;
  first: Promise<string>;
  /** ms from connect() to close, and whether any byte came */
  closed: Promise<{ ms: number; data: string; error: string | null }>;
}
function dial(port: number): Conn {
  const t0 = performance.now();
  const sock = connect(port, NGINX);
  let data = "";
  let error: string | null = null;
  const first = new Promise<string>((resolve, reject) => {
    sock.on("data", (d) => {
      data += d;
      if (data.includes("\n")) resolve(data.trim());
    });
    sock.on("close", () => reject(new Error(`closed before a greeting (${error ?? "EOF"})`)));
  });
  first.catch(() => {});
  const closed = new Promise<{ ms: number; data: string; error: string | null }>((resolve) => {
    sock.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    sock.on("close", () => resolve({ ms: performance.now() - t0, data, error }));
  });
  return { sock, first, closed };
}

function httpGet(port: number, path = "/"): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: NGINX, port, path, agent: false, timeout: 3000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(`${res.statusCode} ${body}`));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

interface Ctx {
  dir: string;
  portal: PortalDriver;
  servers: (Server | HttpServer)[];
  sockets: Set<Socket>;
  ports: { mysql: number; redis: number; api: number };
  up: { a: number; b: number; httpA: number; httpB: number };
  /** /healthz answers 503 on these backends */
  failing: Set<string>;
  desired: PortalDesired;
  pids: number[];
}
const P = suite<Ctx>("PortalDriver (real nginx)", {} as Ctx);

P.before(async (ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "btest-portal-"));
  chmodSync(ctx.dir, 0o755); // nginx workers run as nobody
  ctx.sockets = new Set();
  ctx.failing = new Set();
  ctx.pids = [];
  const a = await listen(greeter("A", ctx.sockets), A);
  const b = await listen(greeter("B", ctx.sockets), B);
  /** answers its name; /healthz answers 503 while `failing` holds this backend */
  const backend = (name: string, host: string) => {
    const srv: HttpServer = httpServer((req, res) => {
      const sick = req.url === "/healthz" && ctx.failing.has(`${host}:${portOf(srv)}`);
      res.writeHead(sick ? 503 : 200).end(name);
    });
    return listen(srv, host);
  };
  const s = await backend("A", A);
  const t = await backend("B", B);
  ctx.servers = [a, b, s, t];
  ctx.up = { a: portOf(a), b: portOf(b), httpA: portOf(s), httpB: portOf(t) };
  ctx.ports = { mysql: await freePort(NGINX), redis: await freePort(NGINX), api: await freePort(NGINX) };
  ctx.portal = new PortalDriver({ prefix: ctx.dir, log: nolog, base: { workerShutdownTimeoutMs: 1000 } });
  ctx.desired = {
    fenced: false,
    mysql: { listen: `${NGINX}:${ctx.ports.mysql}`, primary: `${A}:${ctx.up.a}` },
    redis: { listen: `${NGINX}:${ctx.ports.redis}`, primary: `${B}:${ctx.up.b}` },
    services: [{
      name: "api", listen: `${NGINX}:${ctx.ports.api}`, backends: [`${A}:${ctx.up.httpA}`, `${B}:${ctx.up.httpB}`],
      health: { path: "/healthz", intervalMs: 100, rise: 2, fall: 3, timeoutMs: 80 },
    }],
    healthy: {},
    connectTimeoutMs: 500,
  };
});

P.after(async (ctx) => {
  await ctx.portal?.stop().catch(() => undefined);
  for (const c of ctx.sockets ?? []) c.destroy();
  await Promise.all((ctx.servers ?? []).map((s) => new Promise((r) => s.close(r))));
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
});

P("start, then a client through the portal reaches A (mysql) and B (redis)", async (ctx) => {
  const r0 = await ctx.portal.apply(ctx.desired);
  assert.is(r0.reloaded, false, "not running yet: files only");
  const s = await ctx.portal.start();
  assert.ok(s.started);
  ctx.pids.push(s.pid, ...ctx.portal.workers());
  fig("nginx start", s.ms);
  assert.is((await ctx.portal.start()).started, false, "second start(): already running");
  assert.is(await dial(ctx.ports.mysql).first, "A");
  assert.is(await dial(ctx.ports.redis).first, "B");
  const st = ctx.portal.status();
  assert.equal([st.running, st.pid, st.fenced, st.mysql, st.redis], [true, s.pid, false, `${A}:${ctx.up.a}`, `${B}:${ctx.up.b}`]);
  const same = await ctx.portal.apply(ctx.desired);
  assert.is(same.changed, false, "same state: no reload");
});

P("switch A -> B: new connections reach B at once; an old one to A is closed by worker_shutdown_timeout", async (ctx) => {
  const old = dial(ctx.ports.mysql);
  assert.is(await old.first, "A");
  const t0 = performance.now();
  ctx.desired = { ...ctx.desired, mysql: { ...ctx.desired.mysql!, primary: `${B}:${ctx.up.b}` } };
  const r = await ctx.portal.apply(ctx.desired);
  const applied = performance.now();
  ctx.pids.push(...ctx.portal.workers());
  console.log(`    apply: render ${r.renderMs} ms, nginx -t ${r.testMs} ms, write ${r.writeMs} ms, reload ${r.reloadMs} ms, total ${r.totalMs} ms`);
  let got = "";
  while ((got = await dial(ctx.ports.mysql).first) !== "B") assert.ok(performance.now() - t0 < 3000, `still ${got} after 3 s`);
  fig("apply() start to a new connection reaching B", performance.now() - t0);
  const c = await old.closed;
  const sinceApply = performance.now() - applied;
  fig("old connection to A closed, after apply() returned", sinceApply);
  assert.is(c.data.trim(), "A");
  assert.ok(sinceApply < 2500, `old connection lived ${sinceApply} ms after the reload`);
});

P("self-fenced: connections are refused at once, no byte from any backend", async (ctx) => {
  const r = await ctx.portal.apply({ ...ctx.desired, fenced: true });
  ctx.pids.push(...ctx.portal.workers());
  assert.ok(r.reloaded);
  const st = ctx.portal.status();
  assert.equal([st.fenced, st.mysql, st.redis], [true, null, null]);
  for (const port of [ctx.ports.mysql, ctx.ports.redis]) {
    const c = await dial(port).closed;
    fig(`fenced: connect to close (${port === ctx.ports.mysql ? "mysql" : "redis"})`, c.ms);
    assert.is(c.data, "", "no greeting through a fenced portal");
    assert.ok(c.ms < 1000, `took ${c.ms} ms to refuse`);
  }
  await ctx.portal.apply(ctx.desired); // un-fence: back to B
  assert.is(await dial(ctx.ports.mysql).first, "B");
});

P("a config nginx -t rejects: clear error quoting nginx, old files and routes kept", async (ctx) => {
  const before = readFileSync(join(ctx.dir, STREAM_FILE), "utf8");
  const pid = ctx.portal.status().pid;
  try {
    await ctx.portal.apply({ ...ctx.desired, mysql: { ...ctx.desired.mysql!, primary: "no-such-host.invalid:3306" } });
    assert.unreachable("apply() must throw");
  } catch (e) {
    assert.instance(e, DriverError);
    assert.match((e as Error).message, "nginx -t rejected the new config (live files unchanged)");
    assert.match((e as Error).message, 'host not found in upstream "no-such-host.invalid:3306"');
  }
  assert.is(readFileSync(join(ctx.dir, STREAM_FILE), "utf8"), before);
  assert.is(ctx.portal.status().pid, pid);
  assert.is(await dial(ctx.ports.mysql).first, "B");
});

P("a new listener on a port another process holds: refused before any change (nginx -t does not bind)", async (ctx) => {
  const squat = await listen(createServer(), NGINX);
  try {
    const before = readFileSync(join(ctx.dir, STREAM_FILE), "utf8");
    const workers = ctx.portal.workers();
    const d = { ...ctx.desired, redis: { ...ctx.desired.redis!, listen: `${NGINX}:${portOf(squat)}` } };
    await ctx.portal.apply(d).then(() => assert.unreachable("apply() must throw"), (e: Error) => {
      assert.instance(e, DriverError);
      assert.match(e.message, `listen ${NGINX}:${portOf(squat)}: cannot bind (EADDRINUSE); nothing changed`);
    });
    assert.is(readFileSync(join(ctx.dir, STREAM_FILE), "utf8"), before);
    assert.equal(ctx.portal.workers(), workers, "no reload");
    assert.is(await dial(ctx.ports.redis).first, "B");
  } finally {
    await new Promise((r) => squat.close(r));
  }
});

P("start() that nginx refuses: the error quotes nginx, nothing left running", async (ctx) => {
  const squat = await listen(createServer(), NGINX);
  const dir = mkdtempSync(join(tmpdir(), "btest-portal2-"));
  try {
    const other = new PortalDriver({ prefix: dir, log: nolog, timeoutMs: 8000 });
    await other.apply({ ...ctx.desired, services: [], redis: undefined, mysql: { listen: `${NGINX}:${portOf(squat)}`, primary: null } });
    const t0 = performance.now();
    await other.start().then(() => assert.unreachable("start() must throw"), (e: Error) => {
      assert.instance(e, DriverError);
      assert.match(e.message, /nginx exited \(1\) at start: .*bind\(\) to 127\.0\.4\.1:\d+ failed \(98: Address already in use\)/);
    });
    fig("start() refused (nginx retries bind() 5 times)", performance.now() - t0);
    assert.is(other.status().running, false);
  } finally {
    await new Promise((r) => squat.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

async function spread(port: number, n = 20): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await httpGet(port);
    out[r] = (out[r] ?? 0) + 1;
  }
  return out;
}

P("HTTP: a backend failing its checks leaves the upstream after `fall`, returns after `rise`", async (ctx) => {
  const svc = ctx.desired.services[0]!;
  const bAddr = `${B}:${ctx.up.httpB}`;
  const seen: HealthTransition[] = [];
  let applying = Promise.resolve();
  const checker = new HealthChecker({
    services: ctx.desired.services, timers: realTimers(), now: () => performance.now(), log: nolog,
    onTransition: (t) => {
      seen.push(t);
      applying = applying.then(() => ctx.portal.apply({ ...ctx.desired, healthy: checker.snapshot() })).then(() => undefined);
    },
  });
  checker.start();
  try {
    const waitFor = async (cond: () => boolean, ms: number, what: string) => {
      const t0 = performance.now();
      while (!cond()) {
        assert.ok(performance.now() - t0 < ms, `timed out waiting for ${what}`);
        await sleep(5);
      }
      await applying;
      return performance.now() - t0;
    };
    await waitFor(() => seen.filter((t) => t.to === "up").length === 2, 2000, "both backends up");
    assert.equal(await spread(ctx.ports.api), { "200 A": 10, "200 B": 10 });

    ctx.failing.add(bAddr);
    const down = await waitFor(() => checker.table.state("api", bAddr) === "down", 3000, "B down");
    fig(`HTTP backend removed (fall=${svc.health.fall}, interval ${svc.health.intervalMs} ms), failing to applied`, down);
    const tr = seen.find((t) => t.to === "down")!;
    assert.equal([tr.backend, tr.from, tr.after, tr.detail], [bAddr, "up", 3, "503"]);
    assert.equal(await spread(ctx.ports.api), { "200 A": 20 });
    assert.equal(ctx.portal.status().services, { api: [`${A}:${ctx.up.httpA}`] });

    ctx.failing.add(`${A}:${ctx.up.httpA}`); // none healthy: fail-open, both kept
    await waitFor(() => checker.table.state("api", `${A}:${ctx.up.httpA}`) === "down", 3000, "A down");
    assert.match(readFileSync(join(ctx.dir, "http.d/bollard.conf"), "utf8"), "fail-open");
    assert.equal(await spread(ctx.ports.api), { "200 A": 10, "200 B": 10 });

    ctx.failing.clear();
    const up = await waitFor(() => checker.snapshot().api?.length === 2 && seen.filter((t) => t.to === "up").length === 4, 3000, "both up again");
    fig(`HTTP backends back (rise=${svc.health.rise}), healthy to applied`, up);
    assert.equal(await spread(ctx.ports.api), { "200 A": 10, "200 B": 10 });
  } finally {
    checker.stop();
    await applying.catch(() => undefined);
  }
  ctx.pids.push(...ctx.portal.workers());
});

P("stop() by pid: master and every worker gone", async (ctx) => {
  const st = ctx.portal.status();
  assert.ok(st.running);
  ctx.pids.push(...ctx.portal.workers());
  const r = await ctx.portal.stop();
  assert.ok(r.stopped);
  fig("nginx stop", r.ms);
  await sleep(50);
  const left = [...new Set(ctx.pids)].filter(alive);
  assert.equal(left, [], `nginx processes left: ${left.join(" ")}`);
  assert.is(ctx.portal.status().running, false);
  await assert.not.throws(async () => ctx.portal.stop());
});

P.run();
