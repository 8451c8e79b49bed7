// The console as a whole against a fake agent: keys switch screens, L and q exit with their
// codes, a change reaches the screen within a poll, and when the agent stops answering the
// console keeps going on the last known state (status.json) and says how old it is.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ConsoleApp, EXIT_LOGIN, EXIT_QUIT } from "../../agent/console/app.ts";
import { PinGate } from "../../agent/console/pin.ts";
import type { Request } from "../../agent/console/source.ts";
import type { StatusBody } from "../../agent/runtime/status.ts";
import { body, logs, model } from "./console-fixture.ts";

const C = suite("console app");
let dir = "";
let st: StatusBody;
let up = true;
let app: ConsoleApp;
let written = "";
let writes: { at: number; bytes: string }[] = [];
let run: Promise<number>;

const request: Request = async (method, path) => {
  if (!up) throw new Error("connect ECONNREFUSED");
  if (path === "/status") return { code: 200, body: { ...st, wall: Date.now() } };
  if (path === "/alarms") return { code: 404, body: { status: "error", error: "no route GET /alarms" } };
  if (path.startsWith("/logs")) return { code: 200, body: { node: new URLSearchParams(path.split("?")[1]).get("node"), lines: logs } };
  if (path.startsWith("/events")) return { code: 200, body: { node: "node1", events: [] } };
  return { code: 404, body: {} };
};

/** What the screen shows now, from the writer's buffer. */
const shown = () => app.screen.text().join("\n");
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean, ms = 3000): Promise<number> {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}:\n${shown()}`);
    await wait(5);
  }
  return Date.now() - t0;
}

C.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-console-"));
  st = body();
  up = true;
  written = "";
  writes = [];
  app = new ConsoleApp({
    model: { ...model(), status: { live: false, body: null, wall: null, why: "not read yet" }, hw: { ...model().hw, at: null } },
    request, stateDir: dir, hw: null, pin: new PinGate(join(dir, "pin")),
    diag: async () => "/tmp/x.tar.gz",
    term: { write: (b) => ((written += b), void writes.push({ at: Date.now(), bytes: b })), size: () => null },
  });
  run = app.run();
});

C.after.each(async () => {
  app.key("q");
  await run;
  rmSync(dir, { recursive: true, force: true });
});

C("starts at 80x24 on a terminal of unknown size, screen 1, then the screens on their digits", async () => {
  await until("the nodes", () => /node3 +follower +up/.test(shown()));
  assert.ok(written.startsWith("\x1b[?7l\x1b[?25l\x1b[m\x1b[H\x1b[2J"), "autowrap off, cursor hidden, cleared");
  assert.is(app.screen.text().length, 24);
  app.key("2");
  await until("screen 2", () => shown().includes("MySQL: primary node1, writable"));
  app.key("3");
  await until("screen 3", () => shown().includes("alarms: not available"));
  app.key("4");
  await until("screen 4", () => shown().includes("broker node3 disconnected"));
  app.key("n");
  await until("node2's logs", () => shown().includes("Logs of node2"));
});

C("a change reaches the screen on a later poll, as a repaint of what changed only", async () => {
  await until("the nodes", () => /node3 +follower +up/.test(shown()));
  const full = writes.reduce((n, w) => Math.max(n, w.bytes.length), 0);
  const p = st.view.peers.find((x) => x.name === "node3")!;
  const t0 = Date.now();
  const from = writes.length;
  Object.assign(p, { alive: false, lastHeardMs: 2000 });
  const ms = await until("node3 down", () => /node3 +- +DOWN/.test(shown()));
  const bytes = writes.slice(from).reduce((n, w) => n + w.bytes.length, 0);
  console.log(`  change to screen: ${ms} ms after the agent's status changed, ${bytes} bytes sent for it`);
  // the time is a figure, not an assertion (a loaded machine stretches it): the console's
  // latency benchmark is the lab console test's printed figure
  assert.ok(t0 > 0);
  assert.ok(bytes > 0 && bytes < full, `${bytes} bytes for one row and the top line, a full paint took ${full}`);
  assert.match(shown().split("\n")[0]!, /DEGRADED node3 down/);
});

C("the agent stops answering: last known state from status.json, its age, still working", async () => {
  await until("the nodes", () => /node1\* +leader/.test(shown()));
  writeFileSync(join(dir, "status.json"), JSON.stringify({ ...body(), wall: Date.now() - 5000 }));
  up = false;
  await until("agent down", () => /^AGENT DOWN, last known \d+\.\ds old/m.test(shown()));
  assert.match(shown().split("\n")[0]!, /CRITICAL agent down on node1/);
  app.key("2");
  await until("screen 2 from the last known state", () => shown().includes("MySQL: primary node1"));
  up = true;
  await until("live again", () => /^live \|/m.test(shown()));
});

C("L exits with 10 (a login), q with 0", async () => {
  app.key("L");
  assert.is(await run, EXIT_LOGIN);
  assert.ok(written.endsWith("\x1b[m\x1b[?7h\x1b[?25h\x1b[H\x1b[2J"), "the terminal is given back");
  const again = new ConsoleApp({ model: model(), request, stateDir: dir, hw: null, pin: new PinGate(join(dir, "pin")), diag: async () => "", term: { write: () => undefined, size: () => ({ cols: 100, rows: 30 }) } });
  const r = again.run();
  assert.is(again.screen.height, 30, "a taller terminal is used");
  again.input("7c");
  again.input("q");
  assert.ok(again.flow.view.at === "menu", "no PIN file: the action does not start");
  again.input("x");
  again.key("q");
  assert.is(await r, EXIT_QUIT);
  run = Promise.resolve(EXIT_LOGIN);
});

C.run();
