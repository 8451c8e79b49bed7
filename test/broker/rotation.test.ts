// Founders' bus passwords rotated once the cluster has formed (issue 17 item 1, docs/bus.md
// "Password rotation"): three agents (the built bundle) with a join token and no password,
// three real Mosquitto brokers whose users and ACL the agents own (bus.broker), TLS on. The
// founders form the cluster with the token-derived passwords, then each commits a random one;
// after that the token no longer logs anyone in, and a restarted agent uses its own. Last, with
// these agents (no data path), N+1 readiness end to end: the bodies over the brokers, the CLI.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { derivedPassword, hashMatches } from "../../agent/bus/credentials.ts";
import { AgentProcs, BUNDLE, until, writeTls } from "./agent-procs.ts";
import { startBrokers, type BrokerHarness } from "./harness.ts";

const NODES = ["node1", "node2", "node3"];
const CLUSTER = "rot";
const TOKEN = Buffer.from("rotation-test-token-0123456789abcdef", "utf8");

interface Ctx { h: BrokerHarness; dir: string; procs: AgentProcs }
const s = suite<Ctx>("rotation: founders' token-derived bus passwords become random ones");

const cfgOf = (ctx: Ctx, n: string) => join(ctx.dir, n, "bollard.yaml");

async function views(ctx: Ctx): Promise<Record<string, any>> {
  const out: Record<string, any> = {};
  for (const n of NODES) {
    const j = await ctx.procs.status(n);
    out[n] = j?.live ? j.status.view : null;
  }
  return out;
}

/** One leader every node follows, and every node's committed config gives each member a hash. */
async function rotatedEverywhere(ctx: Ctx): Promise<{ leader: string; members: { name: string; pass?: string }[]; epoch: number } | null> {
  const v = await views(ctx);
  if (NODES.some((n) => !v[n])) return null;
  const leaders = NODES.filter((n) => v[n].role === "leader" && v[n].lease);
  if (leaders.length !== 1 || NODES.some((n) => v[n].leader !== leaders[0] || !v[n].quorum)) return null;
  const c = v[leaders[0]!].committed;
  if (NODES.some((n) => v[n].committed.epoch !== c.epoch) || c.members.some((m: { pass?: string }) => !m.pass)) return null;
  return { leader: leaders[0]!, members: c.members, epoch: c.epoch };
}

async function login(ctx: Ctx, broker: string, user: string, password: string): Promise<string> {
  const opts = { ...ctx.h.clientOptions(user, broker), password, protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 3000 };
  const c = mqtt.connect(ctx.h.url(broker), opts);
  try {
    return await new Promise<string>((resolve) => {
      c.once("connect", () => resolve("connected"));
      c.once("error", (e: Error & { code?: unknown }) => resolve(`refused ${String(e.code)}`));
      setTimeout(() => resolve("no answer"), 3500);
    });
  } finally {
    c.end(true);
  }
}

s.before(async (ctx) => {
  if (!existsSync(BUNDLE)) spawnSync(process.execPath, ["build.mjs"], { cwd: new URL("../..", import.meta.url).pathname, stdio: "inherit" });
  ctx.h = await startBrokers({ nodes: 3, cluster: CLUSTER, agentAuth: { token: TOKEN } });
  ctx.dir = mkdtempSync(join(tmpdir(), "bollard-rotation-"));
  ctx.procs = new AgentProcs((n) => cfgOf(ctx, n));
  const members = ctx.h.members().map((m) => `    - { name: ${m.name}, address: "${m.bus}" }`).join("\n");
  for (const n of NODES) {
    const d = join(ctx.dir, n);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "join.token"), TOKEN.toString("utf8"), { mode: 0o600 });
    const tlsLine = writeTls(d, ctx.h.tlsOf(n)!);
    const a = ctx.h.broker(n).auth!;
    writeFileSync(cfgOf(ctx, n), [
      "cluster:", `  name: ${CLUSTER}`, `  node: ${n}`, "  members:", members,
      "  join:", `    token_file: ${join(d, "join.token")}`, "    timeout_ms: 1500",
      "bus:", `  username: ${n}`,
      `  broker: { password_file: ${a.passwordFile}, acl_file: ${a.aclFile}, pid_file: ${a.pidFile} }`,
      tlsLine,
      `state_dir: ${join(d, "state")}`, "log:", "  level: info", "",
    ].join("\n"));
    ctx.procs.start(n);
  }
});

s.after(async (ctx) => {
  await ctx.procs.stopAll();
  await ctx.h.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

s("the founders form the cluster, then each commits a random password of its own", async (ctx) => {
  const t0 = Date.now();
  const r = await until("every member rotated, one leader, quorum everywhere", 40_000, () => rotatedEverywhere(ctx), 100);
  console.log(`  rotated everywhere ${Date.now() - t0} ms after start (leader ${r.leader}, config epoch ${r.epoch})`);
  for (const m of r.members) {
    const file = join(ctx.dir, m.name, "state", "bus.password");
    const pw = readFileSync(file, "utf8").trim();
    assert.is(statSync(file).mode & 0o777, 0o600, `${file} is 0600`);
    assert.ok(hashMatches(pw, m.pass!), `${m.name}'s bus.password is the one committed`);
    assert.is.not(pw, derivedPassword(TOKEN, CLUSTER, m.name), "not the derived one");
    assert.not.ok(existsSync(join(ctx.dir, m.name, "state", "bus.password.next")), "no rotation left pending");
    for (const b of NODES) {
      const line = readFileSync(ctx.h.broker(b).auth!.passwordFile, "utf8").split("\n").find((l) => l.startsWith(`${m.name}:`));
      assert.is(line, `${m.name}:${m.pass}`, `${b}'s broker has ${m.name}'s new hash`);
    }
  }
});

s("the join token no longer logs anyone in; each node's own password does", async (ctx) => {
  for (const b of NODES) {
    for (const u of NODES) {
      const got = await login(ctx, b, u, derivedPassword(TOKEN, CLUSTER, u));
      assert.match(got, /^refused (134|135)$/, `${u}'s derived password on ${b}'s broker: ${got}`);
    }
    const own = readFileSync(join(ctx.dir, "node2", "state", "bus.password"), "utf8").trim();
    assert.is(await login(ctx, b, "node2", own), "connected", `node2's own password on ${b}'s broker`);
  }
});

s("a restarted agent logs in with its own password and follows the leader; nothing is rotated again", async (ctx) => {
  const before = (await rotatedEverywhere(ctx))!;
  const victim = NODES.find((n) => n !== before.leader)!;
  const p = ctx.procs.agents.get(victim)!;
  p.kill("SIGTERM");
  await until(`${victim} stopped`, 10_000, async () => p.exitCode !== null || p.signalCode !== null);
  ctx.procs.start(victim);
  const after = await until(`${victim} back`, 20_000, () => rotatedEverywhere(ctx), 100);
  assert.is(after.leader, before.leader, "the same leader");
  assert.is(after.epoch, before.epoch, "no new commit: the restarted node did not rotate again");
});

s("bollard ready: yes with three; with one agent gone, losing either other would stop the cluster", async (ctx) => {
  const ready = (n: string) => new Promise<any>((resolve) => {
    const p = spawn(process.execPath, [BUNDLE, "ready", "--json", "--config", cfgOf(ctx, n)], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    p.stdout!.on("data", (d) => (out += d));
    p.on("close", () => { try { resolve(JSON.parse(out)); } catch { resolve(null); } });
  });
  const yes = await until("node1: can lose any one node", 15_000, async () => ((await ready("node1"))?.ready?.ok === true ? await ready("node1") : null), 200);
  assert.match(yes.ready.line, /^can lose any one node: yes/);
  // the bodies every node published reached node1 over the brokers (TLS): one per member
  const st = await ctx.procs.status("node1");
  assert.equal(st.status.ready.nodes.map((n: { node: string }) => n.node), ["node1", "node2", "node3"]);
  const p = ctx.procs.agents.get("node3")!;
  p.kill("SIGTERM");
  const no = await until("node1: losing a node would stop the cluster", 15_000, async () => {
    const r = await ready("node1");
    return r?.ready?.ok === false ? r : null;
  }, 200);
  console.log(`  ${no.ready.line}`);
  assert.match(no.ready.line, /^losing node[12] would stop the cluster: 1 of 3 members would be left, 2 needed for a quorum \(node3 already down\)/);
  assert.equal(no.ready.nodes.map((n: { verdict: string }) => n.verdict), ["no", "no", "down"]);
  ctx.procs.start("node3");
  await until("node1: yes again", 20_000, async () => (await ready("node1"))?.ready?.ok === true || null, 200);
});

s.run();
