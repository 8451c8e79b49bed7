// `bollard nodes|services|logs|events` against a fake agent on a unix socket (the control
// socket's routes), then with the agent gone: last known state, events.jsonl, exit 1.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { CommandContext, SubCommand } from "../../agent/cli/types.ts";
import { eventsCommand, logsCommand, nodesCommand, servicesCommand, sinceTime } from "../../agent/cli/views-cmd.ts";
import { body, events, logs } from "./console-fixture.ts";

const V = suite("bollard nodes, services, logs, events");
let dir = "";
let server: Server | null = null;
let asked: string[] = [];
let out: string[] = [];
let err: string[] = [];
let node3Logs = [{ ts: "2026-11-22T09:59:00.000Z", level: "info", ns: "cluster", msg: "node3 says hello", from: "node3" }];

const ctx = (): CommandContext => ({
  configPath: join(dir, "bollard.yaml"), configGiven: true,
  io: { out: (t) => void out.push(t), err: (t) => void err.push(t) }, build: { version: "test", rev: "test" },
});
const run = (c: SubCommand, ...args: string[]) => c.run(args, ctx());

function start(): Promise<void> {
  server = createServer((req, res) => {
    const u = new URL(req.url!, "http://x");
    asked.push(req.url!);
    const reply = (code: number, b: unknown) => (res.writeHead(code, { "content-type": "application/json" }), res.end(JSON.stringify(b)));
    const node = u.searchParams.get("node") ?? "node1";
    if (u.pathname === "/status") return reply(200, body());
    if (u.pathname === "/alarms") return reply(404, { status: "error", error: "no route" });
    if (u.pathname === "/logs") {
      if (node === "node9") return reply(504, { status: "error", error: "node9 did not answer within 3000 ms" });
      const since = u.searchParams.get("since") ?? "";
      return reply(200, { node, lines: (node === "node3" ? node3Logs : logs).filter((l) => l.ts >= since) });
    }
    if (u.pathname === "/events") return reply(200, { node, events: events.filter((e) => e.node === node) });
    reply(404, {});
  });
  return new Promise((r) => server!.listen(join(dir, "agent.sock"), () => r()));
}

V.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), "bollard-views-"));
  writeFileSync(join(dir, "bollard.yaml"), `cluster:\n  name: lab\n  node: node1\n  members:\n    - { name: node1, address: "127.0.1.1:1883" }\n    - { name: node2, address: "127.0.1.2:1883" }\n    - { name: node3, address: "127.0.1.3:1883" }\nbus:\n  password: secret-bus\nstate_dir: ${dir}\n`);
  asked = [];
  out = [];
  err = [];
  await start();
});

V.after.each(async () => {
  await new Promise((r) => (server ? server.close(r) : r(null)));
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

V("nodes: the table, and --json", async () => {
  assert.is(await run(nodesCommand, "--no-hw"), 0);
  assert.match(out[0]!, /^OK\n\nNODE +ROLE +STATE/);
  assert.match(out[0]!, /\nnode1\* +leader +up .*mysql vip\n/);
  out = [];
  assert.is(await run(nodesCommand, "--no-hw", "--json"), 0);
  const j = JSON.parse(out[0]!);
  assert.is(j.live, true);
  assert.is(j.state, "OK");
  assert.equal(j.nodes.map((n: { node: string; role: string; holds: string[] }) => [n.node, n.role, n.holds]), [["node1", "leader", ["mysql", "vip"]], ["node2", "follower", ["redis"]], ["node3", "follower", []]]);
});

V("services: primaries and replicas, --json", async () => {
  assert.is(await run(servicesCommand), 0);
  assert.match(out[0]!, /^MySQL: primary node1, writable\n/);
  out = [];
  assert.is(await run(servicesCommand, "--json"), 0);
  const j = JSON.parse(out[0]!);
  assert.equal(j.services.map((s: { svc: string; holder: string }) => [s.svc, s.holder]), [["mysql", "node1"], ["redis", "node2"]]);
  assert.equal(j.vip, { address: null, holder: "node1", up: { node1: true, node2: false, node3: false } });
});

V("logs --node node3: node3's lines, through this node's agent", async () => {
  assert.is(await run(logsCommand, "--node", "node3", "--level", "warn"), 0);
  assert.ok(asked.includes("/logs?n=200&level=warn&node=node3"), asked.join(" "));
  assert.equal(out, ["09:59:00.000 I cluster   node3 says hello from=node3"]);
  out = [];
  assert.is(await run(logsCommand, "--node", "node3", "--json", "-n", "5", "--since", "2026-11-22T09:00:00Z"), 0);
  assert.equal(JSON.parse(out[0]!), node3Logs[0]);
  assert.ok(asked.at(-1)!.includes("since=2026-11-22T09%3A00%3A00.000Z"));
});

V("logs: a node that does not answer, usage errors", async () => {
  assert.is(await run(logsCommand, "--node", "node9"), 1);
  assert.match(err[0]!, /logs of node9: node9 did not answer within 3000 ms/);
  assert.is(await run(logsCommand, "--level", "loud"), 2);
  assert.is(await run(logsCommand, "--since", "yesterday"), 2);
  assert.is(await run(logsCommand, "--bogus"), 2);
  assert.is(await run(nodesCommand, "extra"), 2);
  assert.is(sinceTime("10m", Date.parse("2026-11-22T10:00:00Z")), "2026-11-22T09:50:00.000Z");
});

V("logs -f: new lines as they come, none twice, until SIGINT", async () => {
  const p = run(logsCommand, "-f", "--node", "node3");
  await new Promise((r) => setTimeout(r, 300));
  node3Logs = [...node3Logs, { ts: "2026-11-22T09:59:01.000Z", level: "warn", ns: "ha", msg: "second", from: "node3" }];
  await new Promise((r) => setTimeout(r, 1300));
  process.emit("SIGINT");
  assert.is(await p, 0);
  assert.equal(out.map((l) => l.split(" ").slice(-2).join(" ")), ["hello from=node3", "second from=node3"]);
  assert.match(asked.at(-1)!, /since=2026-11-22T09%3A59%3A01\.000Z/);
});

V("events: the timeline, --json, --node all", async () => {
  assert.is(await run(eventsCommand), 0);
  assert.is(out.length, events.length);
  assert.match(out[1]!, /^2026-11-22T09:58:01\.450Z node1  step +failover mysql step confirmFence done in 350 ms/);
  out = [];
  assert.is(await run(eventsCommand, "--node", "all", "--json"), 0);
  assert.ok(["node1", "node2", "node3"].every((n) => asked.includes(`/events?n=200&node=${n}`)), asked.join(" "));
  assert.equal(JSON.parse(out[0]!), events[0]);
});

V("the agent down: last known state (exit 1), events.jsonl (exit 1), logs (exit 1)", async () => {
  await new Promise((r) => server!.close(r));
  server = null;
  assert.is(await run(nodesCommand, "--no-hw"), 1);
  assert.match(err[0]!, /no last known state/);
  writeFileSync(join(dir, "status.json"), JSON.stringify({ ...body(), wall: Date.now() - 7000 }));
  writeFileSync(join(dir, "events.jsonl"), events.map((e) => JSON.stringify(e)).join("\n") + "\n");
  err = [];
  out = [];
  assert.is(await run(nodesCommand, "--no-hw"), 1);
  assert.match(err[0]!, /the agent is not answering .*; its last known state, 7\.\d s old:/);
  assert.match(out[0]!, /node1\* +leader/);
  out = [];
  assert.is(await run(nodesCommand, "--no-hw", "--json"), 1);
  assert.is(JSON.parse(out[0]!).live, false);
  out = [];
  assert.is(await run(eventsCommand), 1);
  assert.is(out.length, events.length);
  assert.is(await run(logsCommand), 1);
  assert.match(err.at(-1)!, /logs: the agent is not answering/);
});

V.run();
