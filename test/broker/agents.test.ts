// Three agents as real processes (the built bundle) against three real Mosquitto brokers on
// 127.0.1.1-3, with a password file and an ACL (issue 2 §8). Last, an alarm ack forwarded
// over the bus to the node that raised the alarm (docs/alarms.md "Acknowledging").
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { writeTls } from "./agent-procs.ts";
import { pidAlive, startBrokers, type BrokerHarness } from "./harness.ts";

const BUNDLE = new URL("../../dist/bollard.js", import.meta.url).pathname;
const NODES = ["node1", "node2", "node3"];

interface Ctx { h: BrokerHarness; dir: string; agents: Map<string, ChildProcess>; pids: number[] }
const s = suite<Ctx>("three agents, three brokers");

function startAgent(ctx: Ctx, node: string): void {
  const p = spawn(BUNDLE, ["agent", "--config", join(ctx.dir, node, "bollard.yaml")], { stdio: ["ignore", "ignore", "pipe"] });
  p.stderr!.on("data", (d) => process.stderr.write(`[${node}] ${d}`));
  ctx.agents.set(node, p);
  ctx.pids.push(p.pid!);
}

async function status(ctx: Ctx, node: string): Promise<any | null> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BUNDLE, "status", "--json", "--config", join(ctx.dir, node, "bollard.yaml")], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    p.stdout!.on("data", (d) => (out += d));
    p.on("close", () => { try { resolve(JSON.parse(out)); } catch { resolve(null); } });
  });
}

/** `bollard --config <node's> ARGS` (options before a subcommand's name are the global ones): exit code, stdout, stderr. */
async function cli(ctx: Ctx, node: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BUNDLE, "--config", join(ctx.dir, node, "bollard.yaml"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout!.on("data", (d) => (out += d));
    p.stderr!.on("data", (d) => (err += d));
    p.on("close", (code) => resolve({ code, out, err }));
  });
}

async function views(ctx: Ctx, nodes = NODES) {
  const out: Record<string, any> = {};
  for (const n of nodes) { const r = await status(ctx, n); out[n] = r?.live ? r.status.view : null; }
  return out;
}

async function until<T>(what: string, ms: number, f: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The one leader every live node agrees on, or null. */
async function agreedLeader(ctx: Ctx, nodes: string[]): Promise<string | null> {
  const v = await views(ctx, nodes);
  const leaders = nodes.filter((n) => v[n]?.role === "leader" && v[n]?.lease);
  if (leaders.length !== 1) return null;
  return nodes.every((n) => v[n]?.leader === leaders[0]) ? leaders[0] : null;
}

s.before(async (ctx) => {
  ctx.h = await startBrokers({ nodes: 3, cluster: "real" });
  ctx.dir = mkdtempSync(join(tmpdir(), "bollard-agents-"));
  ctx.agents = new Map();
  ctx.pids = [];
  const members = ctx.h.members().map((m) => `    - { name: ${m.name}, address: "${m.bus}" }`).join("\n");
  for (const n of NODES) {
    const d = join(ctx.dir, n);
    const { username, password, tls } = ctx.h.credentials(n);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "bus.password"), password, { mode: 0o600 });
    const tlsYaml = `${writeTls(d, tls!)}\n`;
    // node1 does not judge node-lost: a lost node3 is then an alarm node2 alone raises
    const alarms = n === "node1" ? "alarms:\n  rules:\n    node-lost: { enabled: false }\n" : "";
    writeFileSync(join(d, "bollard.yaml"), `cluster:\n  name: real\n  node: ${n}\n  members:\n${members}\nbus:\n  username: ${username}\n  password_file: ${join(d, "bus.password")}\n${tlsYaml}state_dir: ${d}\nlog:\n  level: info\n${alarms}`);
    startAgent(ctx, n);
  }
});

s.after(async (ctx) => {
  for (const p of ctx.agents.values()) if (p.exitCode === null) p.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  for (const pid of ctx.pids) if (pidAlive(pid)) process.kill(pid, "SIGKILL");
  await ctx.h.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
  assert.equal(ctx.pids.filter(pidAlive), [], "no agent process is left");
});

s("a leader is elected and every node follows it", async (ctx) => {
  const t0 = Date.now();
  const l = await until("a leader", 30_000, () => agreedLeader(ctx, NODES));
  console.log(`  leader ${l} agreed by all three ${Date.now() - t0} ms after start`);
  const v = await views(ctx);
  for (const n of NODES) assert.ok(v[n].quorum, `${n} has quorum`);
  await new Promise((r) => setTimeout(r, 3000));
  const rss = NODES.map((n) => rssMb(ctx.agents.get(n)!.pid!));
  console.log(`  idle agent RSS after ~6 s: ${rss.map((x) => x.toFixed(1)).join(", ")} MB`);
});

function rssMb(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

s("kill -9 of the leader's agent gives a new leader", async (ctx) => {
  const old = (await agreedLeader(ctx, NODES))!;
  const rest = NODES.filter((n) => n !== old);
  ctx.agents.get(old)!.kill("SIGKILL");
  const t0 = Date.now();
  const l = await until("a new leader", 20_000, async () => {
    const v = await views(ctx, rest);
    return rest.find((n) => v[n]?.role === "leader") ?? null;
  });
  const elected = Date.now() - t0;
  await until("its lease", 20_000, () => agreedLeader(ctx, rest));
  console.log(`  kill -9 ${old}: ${l} elected after ${elected} ms, lease held after ${Date.now() - t0} ms (polled every ~50 ms)`);
  assert.is.not(l, old);
  startAgent(ctx, old);
  await until(`${old} following ${l}`, 10_000, async () => (await views(ctx, [old]))[old]?.leader === l);
});

s("with one broker stopped, the other two keep quorum", async (ctx) => {
  const l = await until("a leader", 30_000, () => agreedLeader(ctx, NODES));
  const victim = NODES.find((n) => n !== l)!;
  await ctx.h.stopBroker(victim);
  // victim can still read the two others' brokers but publish nowhere: it loses the others.
  const others = NODES.filter((n) => n !== victim);
  await new Promise((r) => setTimeout(r, 2500));
  const v = await views(ctx, others);
  for (const n of others) assert.ok(v[n].quorum, `${n} keeps quorum with ${victim}'s broker down`);
  assert.is(await agreedLeader(ctx, others), l, "the leader stays the same");
  const vv = (await views(ctx, [victim]))[victim];
  console.log(`  broker of ${victim} down: ${victim} sees quorum=${vv.quorum}, role ${vv.role}`);
  await ctx.h.startBroker(victim);
  await until(`${victim} back in quorum`, 10_000, async () => (await views(ctx, [victim]))[victim]?.quorum);
});

s("a node publishing under another node's prefix is refused by the broker", async (ctx) => {
  const c = await mqtt.connectAsync(ctx.h.url("node1"), { ...ctx.h.clientOptions("node1", "node1"), protocolVersion: 5, reconnectPeriod: 0 });
  try {
    let code: number | undefined;
    try {
      const r = await c.publishAsync("bollard/v1/real/node2/hb", "{}", { qos: 1 });
      code = (r as any)?.reasonCode;
    } catch (e) {
      code = (e as any)?.code;
    }
    assert.is(code, 135, "MQTT 5 PUBACK reason 135, not authorized");
  } finally {
    await c.endAsync();
  }
});

s("an alarm only node2 raised is acknowledged from node1, through node2; a node that does not answer is a clear error", async (ctx) => {
  const ID = "node-lost:node3";
  ctx.agents.get("node3")!.kill("SIGTERM");
  const row = await until(`${ID} from node2 in node1's list`, 20_000, async () => {
    const r = await cli(ctx, "node1", ["alarms", "--json"]);
    return r.code === 0 ? (JSON.parse(r.out).active as { id: string; reporters: string[] }[]).find((a) => a.id === ID) : null;
  });
  assert.equal(row.reporters, ["node2"], "node1 has the rule off: node2 alone raised it");
  const t0 = Date.now();
  const r = await cli(ctx, "node1", ["alarms", "ack", ID, "--by", "ops@test"]);
  console.log(`  figure: ack forwarded to node2 and answered, CLI process included: ${Date.now() - t0} ms`);
  assert.is(r.code, 0, r.err);
  assert.is(r.out.trim(), `acknowledged ${ID} by ops@test on node2`);
  // node2's engine applied it: its retained copy on its broker, and its history
  const c = await mqtt.connectAsync(ctx.h.url("node2"), { ...ctx.h.clientOptions("node1", "node2"), protocolVersion: 5, reconnectPeriod: 0 });
  try {
    const got = new Promise<any>((resolve) => c.on("message", (_t, p) => resolve(JSON.parse(p.toString()))));
    await c.subscribeAsync(`bollard/v1/real/node2/alarm/${ID}`, { qos: 1 });
    const a = await Promise.race([got, new Promise((_r, rej) => setTimeout(() => rej(new Error("no retained alarm on node2's broker")), 3000))]);
    assert.equal([a.state, a.ackedBy, a.reporter], ["acknowledged", "ops@test", "node2"]);
  } finally {
    await c.endAsync();
  }
  const history = readFileSync(join(ctx.dir, "node2", "alarms", "history.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(history.some((h) => h.kind === "acked" && h.alarm.id === ID && h.alarm.ackedBy === "ops@test"), "node2's history has the ack");
  // node2's agent gone, its retained alarm still on its broker: the ack cannot be forwarded
  const n2 = ctx.agents.get("node2")!;
  n2.kill("SIGKILL");
  await until("node2's agent gone", 5000, async () => n2.exitCode !== null || n2.signalCode !== null);
  const late = await cli(ctx, "node1", ["alarms", "ack", ID, "--by", "late@test"]);
  assert.is(late.code, 1, late.out);
  assert.match(late.err, `bollard: refused: node2 did not answer within 3000 ms: it may not have acknowledged ${ID}; run "bollard alarms ack ${ID}" on node2`);
});

s.run();
