// `bollard alarms` against the routes alarmRoutes() defines, served on a unix socket as
// ControlServer serves ControlHandlers.routes; then with no agent: from the history file.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { AlarmEngine } from "../../agent/alarms/engine.ts";
import { AlarmHistory, historyDir } from "../../agent/alarms/history.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import type { Alarm, Readings, Transition } from "../../agent/alarms/types.ts";
import type { ForwardResult } from "../../agent/alarms/remote-ack.ts";
import { alarmsCommand, wrap } from "../../agent/cli/alarms-cmd.ts";
import { alarmRoutes, type AlarmRouteDeps } from "../../agent/runtime/alarm-routes.ts";
import type { CommandContext } from "../../agent/cli/types.ts";

const READINGS: Readings = {
  node: "node1",
  cluster: { node: "node1", quorum: true, member: true, peers: [{ name: "node2", alive: true, skewMs: 3 }, { name: "node3", alive: false, skewMs: null }] },
  switches: [{ switch: "switchB", reachable: true, ports: [{ port: "swp1", node: "node1", nic: "eth1", oper: "down", admin: "up" }] }],
  bonds: [{ node: "node1", bond: "bond0", slaves: [{ name: "eth0", mii: "up" }, { name: "eth1", mii: "down" }] }],
  host: { node: "node1", filesystems: [{ mount: "/var/lib/mysql", usedRatio: 0.88 }] },
};
const T0 = Math.floor(Date.now() / 1000) * 1000 - 190_000;

const C = suite("bollard alarms");
let dir = "";
let server: Server | null = null;
let engine: AlarmEngine;
let history: AlarmHistory;
let published: Transition[] = [];
let retained: Alarm[] = [];
/** the agent's forwarding of acks to the nodes that raised an alarm; undefined: none */
let forward: AlarmRouteDeps["forwardAck"];
let out: string[] = [];
let err: string[] = [];
const ctx = (): CommandContext => ({
  configPath: join(dir, "bollard.yaml"),
  configGiven: true,
  io: { out: (t) => void out.push(t), err: (t) => void err.push(t) },
  build: { version: "test", rev: "test" },
});
const run = (...args: string[]) => alarmsCommand.run(args, ctx());

C.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), "bollard-alarms-cmd-"));
  writeFileSync(
    join(dir, "bollard.yaml"),
    `cluster:\n  name: port-fms\n  node: node1\n  members:\n    - { name: node1, address: "127.0.1.1:1883" }\nbus:\n  password: x\nstate_dir: ${dir}\n`,
  );
  const cfg = defaultAlarmsConfig();
  engine = new AlarmEngine("node1", cfg.damping);
  history = new AlarmHistory(historyDir(dir), { ...cfg.history, fsync: false });
  // an older occurrence, cleared
  history.append(engine.step(T0 - 3_600_000, evaluate({ node: "node1", host: { node: "node1", timeSync: "unsynced" } }, cfg.rules)).transitions);
  history.append(engine.step(T0 - 3_000_000, evaluate({ node: "node1", host: { node: "node1", timeSync: "synced" } }, cfg.rules)).transitions);
  history.append(engine.step(T0 - 2_000_000, evaluate({ node: "node1", host: { node: "node1", timeSync: "synced" } }, cfg.rules)).transitions);
  history.append(engine.step(T0, evaluate(READINGS, cfg.rules)).transitions);
  published = [];
  retained = [
    { ...engine.get("node-lost:node3")!, reporter: "node2", raisedAt: T0 - 500 },
    { ...engine.get("port-down:switchB:swp1")!, id: "psu:node2:PSU2", rule: "psu", node: "node2", reporter: "node2", text: "node2 PSU2 failed", severity: "major" },
  ];
  forward = undefined;
  const routes = () => alarmRoutes({ node: "node1", engine, history, retained: () => retained, wall: () => T0 + 60_000, onTransitions: (ts) => void published.push(...ts), forwardAck: forward });
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://agent");
    const route = routes()[`${req.method} ${url.pathname}`];
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", async () => {
      const r = route ? await route(url.searchParams, text ? JSON.parse(text) : null) : { code: 404, body: { status: "error" } };
      res.writeHead(r.code, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server!.listen(join(dir, "agent.sock"), resolve));
  out = [];
  err = [];
});
C.after.each(async () => {
  if (server) await new Promise((r) => server!.close(r));
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

C("the table: cluster-wide, most severe first, 80 columns, ids to ack by", async () => {
  assert.is(await run("--all"), 0, err.join("\n"));
  const text = out.join("\n");
  console.log(text);
  for (const l of text.split("\n")) assert.ok(l.length <= 80, `over 80 columns: ${l}`);
  const rows = text.split("\n").filter((l) => /^(CRIT|MAJ|MIN|INFO) /.test(l));
  assert.equal(rows.map((l) => l.split(/\s+/)[0]), ["MAJ", "MAJ", "MAJ", "MAJ", "MIN", "MIN"]);
  assert.match(text, /^5 active alarms \(cluster-wide, as node1 sees them\)/);
  assert.match(text, "id port-down:switchB:swp1");
  assert.match(text, "node2 PSU2 failed");
  assert.match(text, "recently cleared (1, newest first)");
  assert.match(text, "node1 clock not synchronised");
});

C("GET /alarms lists this node's pending conditions (raise_after not yet over) apart from the active ones", async () => {
  const id = "not-ready:node2"; // raised after 15 s by default (alarms/config.ts)
  engine.step(T0 + 59_000, { conditions: [{ id, scope: id, rule: "not-ready", severity: "major", node: "node2", text: "losing node2 would stop MySQL writes", detail: "no in-sync replica" }], scopes: [id], resolved: [] });
  const r = await alarmRoutes({ node: "node1", engine, history, retained: () => retained, wall: () => T0 + 60_000, onTransitions: () => undefined })["GET /alarms"]!(new URLSearchParams(), null);
  const b = r.body as { active: { id: string }[]; pending: { id: string; forMs: number }[] };
  assert.equal(b.pending, [{ id, severity: "major", text: "losing node2 would stop MySQL writes", forMs: 1000 }]);
  assert.not.ok(b.active.some((a) => a.id === id));
});

C("--json: merged rows name every reporter", async () => {
  assert.is(await run("--json"), 0);
  const b = JSON.parse(out[0]!);
  assert.is(b.live, true);
  const lost = b.active.find((a: { id: string }) => a.id === "node-lost:node3");
  assert.equal([lost.reporters, lost.raisedAt], [["node1", "node2"], T0 - 500]);
  assert.is(b.cleared, undefined);
});

C("ack: this node's alarm; another node's is refused with where to go; unknown is an error", async () => {
  assert.is(await run("ack", "port-down:switchB:swp1", "--by", "ops@console"), 0, err.join("\n"));
  assert.equal(out, ["acknowledged port-down:switchB:swp1 by ops@console"]);
  assert.equal([engine.get("port-down:switchB:swp1")!.ackedBy, engine.get("port-down:switchB:swp1")!.ackedAt], ["ops@console", T0 + 60_000]);
  assert.equal(published.map((t) => [t.kind, t.alarm.id]), [["acked", "port-down:switchB:swp1"]]);
  assert.is(await run("ack", "psu:node2:PSU2"), 1);
  assert.match(err.join("\n"), 'alarm psu:node2:PSU2 is raised by node2: run "bollard alarms ack psu:node2:PSU2" there');
  assert.is(await run("ack", "nope:x"), 1);
  assert.match(err.at(-1)!, 'no active alarm "nope:x" on node1');
  assert.is(await run("ack"), 2);
  assert.is(await run("ack", "bad id"), 2);
  assert.is(await run("--bogus"), 2);
});

C("ack forwarded to the node that raised it; one that does not answer is an error, or a warning when acknowledged elsewhere", async () => {
  const asked: [string, string, string[]][] = [];
  let answer: ForwardResult = { acked: [{ node: "node2", ackedBy: "ops@console", ackedAt: T0 + 60_000 }], errors: [] };
  forward = async (id, who, reporters) => {
    asked.push([id, who, reporters]);
    return answer;
  };
  assert.is(await run("ack", "psu:node2:PSU2", "--by", "ops@console"), 0, err.join("\n"));
  assert.equal(out, ["acknowledged psu:node2:PSU2 by ops@console on node2"]);
  assert.equal(asked, [["psu:node2:PSU2", "ops@console", ["node2"]]]);
  assert.equal(published, [], "nothing of node1's changed");
  // raised by node1 and node2: acknowledged on both
  assert.is(await run("ack", "node-lost:node3", "--by", "ops@console"), 0, err.join("\n"));
  assert.equal(out.at(-1), "acknowledged node-lost:node3 by ops@console (also on node2)");
  assert.equal(asked.at(-1), ["node-lost:node3", "ops@console", ["node2"]]);
  assert.equal(published.map((t) => [t.kind, t.alarm.id]), [["acked", "node-lost:node3"]]);
  // acknowledged on node2 before by someone else: the first who stays
  answer = { acked: [{ node: "node2", ackedBy: "day@node2", ackedAt: T0 }], errors: [] };
  assert.is(await run("ack", "psu:node2:PSU2", "--by", "night@console"), 0);
  assert.equal(out.at(-1), "acknowledged psu:node2:PSU2 by day@node2 on node2");
  // node2 does not answer: an error when acknowledged nowhere...
  const late = `node2 did not answer within 3000 ms: it may not have acknowledged psu:node2:PSU2; run "bollard alarms ack psu:node2:PSU2" on node2`;
  answer = { acked: [], errors: [late] };
  err = [];
  assert.is(await run("ack", "psu:node2:PSU2"), 1);
  assert.equal(err, [`bollard: refused: ${late}`]);
  // ...and a warning when node1 holds it too
  err = [];
  assert.is(await run("ack", "node-lost:node3"), 0);
  assert.equal(out.at(-1), "acknowledged node-lost:node3 by ops@console");
  assert.equal(err, [`bollard: warning: ${late}`]);
  out = [];
  assert.is(await run("ack", "psu:node2:PSU2", "--json"), 1);
  assert.equal(JSON.parse(out[0]!), { status: "error", error: late });
  // an unknown id is not forwarded
  assert.is(await run("ack", "nope:x"), 1);
  assert.equal(asked.length, 6);
});

C("no agent: this node's alarms from the history, said to be stale; ack fails", async () => {
  await new Promise((r) => server!.close(r));
  server = null;
  assert.is(await run("--all"), 1);
  assert.match(err.join("\n"), "the list may be stale");
  const text = out.join("\n");
  assert.match(text, /^4 active alarms \(from history, may be stale\)/);
  assert.ok(!text.includes("PSU2"), "other nodes' alarms are not in this node's history");
  assert.match(text, "recently cleared (1, newest first)");
  out = [];
  assert.is(await run("--json"), 1);
  assert.equal(JSON.parse(out[0]!).active.length, 4);
  assert.is(await run("ack", "port-down:switchB:swp1"), 1);
  assert.match(err.at(-1)!, "cannot acknowledge: the agent is not answering");
});

C("wrap keeps words whole and cuts only what cannot fit", () => {
  assert.equal(wrap("switchB port swp1 to node1 eth1 down", 12), ["switchB port", "swp1 to", "node1 eth1", "down"]);
  assert.equal(wrap("id temperature:node1:P1-DIMMA1_Temp-abcdef", 16), ["id", "temperature:node", "1:P1-DIMMA1_Temp", "-abcdef"]);
});

C.run();
