// The rolling upgrade of the agent bundle in the lab (issue 15 items 1; docs/upgrade.md), with
// the real agents, MariaDB, Redis, Mosquitto, nginx and BMCs. Each node runs its agent through
// agent-exec (as the unit does) from a bundle of its own, so that nodes can differ:
//   - mixed versions side by side: node1 and node2 on the bundle of the last commit without
//     rolling upgrades (no upgrade support), node3 on this one: one cluster, a MySQL switchover
//     to node3 and back under a writer, `upgrade status`, and `bollard upgrade` refused;
//   - a rolling upgrade of the three agents (0.1.0 -> 0.1.1-test) under a writer through the
//     VIP: no acknowledged write lost, never two writable primaries; the pauses are figures;
//   - a bundle that cannot join (built to speak wire protocol 99): rolled back on the first
//     node by its guard at the deadline, the rollout stopped, an event and an alarm say why.
// Times are printed as figures, never asserted. Needs root (the lab).
import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, REPO, S, Writer, dataIp, events, healthy, lab, lostMysql, lostRedis, status, until } from "./ha-lab.ts";

const run = promisify(execFile);
const root = process.getuid?.() === 0;
const s = suite("rolling upgrade of the agent bundle in the lab");
const figures: string[] = [];
const T = mkdtempSync(join(tmpdir(), "bollard-upgrade-"));
const B = { old: join(T, "old/bollard.js"), cur: join(T, "cur/bollard.js"), next: join(T, "next/bollard.js"), broken: join(T, "broken/bollard.js") };
const sha = (f: string) => execFileSync("sha256sum", [f], { encoding: "utf8" }).split(" ")[0]!;

function build(out: string, env: Record<string, string>, cwd = REPO): void {
  mkdirSync(join(out, ".."), { recursive: true });
  execFileSync("node", ["build.mjs"], { cwd, env: { ...process.env, BOLLARD_OUTFILE: out, ...env }, stdio: "ignore" });
}

/** Each node's agent from T/NODE/bollard.js, through agent-exec and its own bundles directory. */
async function labUp(bundles: Record<string, string>): Promise<void> {
  await lab("down");
  for (const n of NODES) {
    mkdirSync(join(T, n), { recursive: true });
    rmSync(join(T, n, "bollard.js"), { force: true });
    copyFileSync(bundles[n]!, join(T, n, "bollard.js"));
  }
  // no web: section: the old agent predates the web console and refuses a key it does not know
  process.env.LAB_NO_WEB = "1";
  process.env.LAB_AGENT_CMD = `env MALLOC_ARENA_MAX=2 ${REPO}/overlays/usr/lib/bollard/agent-exec ${S}/@NODE@/state/bundles ${T}/@NODE@/bollard.js`;
  await lab("up");
  await until("a healthy MySQL and Redis", 120_000, async () => (await healthy("mysql")) && (await healthy("redis")), 300);
}

/** `bollard ARGS` on NODE with BUNDLE, as an operator would; never throws. */
async function cli(node: string, bundle: string, args: string[], timeoutMs = 300_000): Promise<{ code: number; out: string }> {
  try {
    const r = await run("ip", ["netns", "exec", node, "node", bundle, "--config", `${S}/${node}/bollard.yaml`, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof x.code === "number" ? x.code : -1, out: `${x.stdout ?? ""}${x.stderr ?? ""}${typeof x.code === "number" ? "" : x.message}` };
  }
}

/** Every pause over `ms` between two acknowledged writes after `since`: "HH:MM:SS.mmm +N ms" (to set beside the rollout's log). */
function pauses(w: Writer, svc: "mysql" | "redis", since: number, ms = 200): string[] {
  const out: string[] = [];
  let prev = since;
  for (const x of w.acked(svc).filter((a) => a.at >= since)) {
    if (x.at - prev > ms) out.push(`${new Date(prev).toISOString().slice(11, 23)} +${x.at - prev} ms`);
    prev = x.at;
  }
  return out;
}

interface UpNode { node: string; heard: boolean; version: string | null; bundle: string | null; upgrade?: { step: string; why?: string } }
const upgradeInfo = async (node: string, bundle: string) => {
  const r = await cli(node, bundle, ["upgrade", "status", "--json"], 30_000);
  return r.code === 0 ? (JSON.parse(r.out) as { nodes: UpNode[]; rollouts: unknown[] }) : null;
};

s.before(async () => {
  if (!root) return;
  const t0 = Date.now();
  // the newest commit in this history without rolling upgrades (no agent/upgrade/gate.ts) that
  // already speaks the bus the lab runs (TLS on every broker: agent/bus/tls.ts): its agent knows
  // nothing of upgrades, and speaks the same wire protocol (docs/bus.md "Versions")
  const has = (c: string, f: string) => { try { execFileSync("git", ["cat-file", "-e", `${c}:${f}`], { cwd: REPO, stdio: "ignore" }); return true; } catch { return false; } };
  const revs = execFileSync("git", ["rev-list", "--date-order", "HEAD"], { cwd: REPO, encoding: "utf8" }).trim().split("\n");
  const base = revs.find((c) => !has(c, "agent/upgrade/gate.ts") && has(c, "agent/bus/tls.ts"));
  if (!base) throw new Error("no commit without agent/upgrade/ that has agent/bus/tls.ts in this history");
  const src = join(T, "src");
  mkdirSync(src);
  execFileSync("bash", ["-c", `git -C ${REPO} archive ${base} | tar -x -C ${src}`]);
  symlinkSync(join(REPO, "node_modules"), join(src, "node_modules"));
  build(join(src, "dist/bollard.js"), { BOLLARD_REV: base.slice(0, 12), BOLLARD_OUTFILE: "dist/bollard.js" }, src);
  mkdirSync(join(T, "old"));
  copyFileSync(join(src, "dist/bollard.js"), B.old);
  build(B.cur, { BOLLARD_VERSION: "0.1.0" });
  build(B.next, { BOLLARD_VERSION: "0.1.1-test" });
  build(B.broken, { BOLLARD_VERSION: "0.1.2-broken", BOLLARD_TEST_PROTOCOL: "99" });
  console.log(`  bundles built in ${((Date.now() - t0) / 1000).toFixed(1)} s: old ${base.slice(0, 12)} ${sha(B.old).slice(0, 12)}, 0.1.0 ${sha(B.cur).slice(0, 12)}, 0.1.1-test ${sha(B.next).slice(0, 12)}, broken ${sha(B.broken).slice(0, 12)}`);
});

s.after(async () => {
  if (root) await lab("down");
  delete process.env.LAB_AGENT_CMD;
  delete process.env.LAB_NO_WEB;
  rmSync(T, { recursive: true, force: true });
  console.log(`figures:\n  ${figures.join("\n  ")}`);
});

s("mixed versions side by side: an old agent and a new one form one cluster and switch over MySQL", async () => {
  if (!root) return console.log("skipped: the lab needs root");
  await labUp({ node1: B.old, node2: B.old, node3: B.cur });
  const st = await until("upgrade status on node3", 20_000, () => upgradeInfo("node3", B.cur));
  const by = new Map(st.nodes.map((n) => [n.node, n]));
  assert.ok(NODES.every((n) => by.get(n)?.heard), `every node heard: ${JSON.stringify(st.nodes)}`);
  assert.is(by.get("node1")!.upgrade, undefined, "an old agent announces no upgrade step");
  assert.is(by.get("node3")!.bundle, sha(B.cur), "node3 announces the bundle it runs");
  const text = await cli("node3", B.cur, ["upgrade", "status"]);
  assert.match(text.out, /node1\*?\s+yes\s+-\s+0\.1\.0\b[\s\S]*without upgrade support/); // ROOT "-": not run from a bollard image
  // the new agent refuses to roll over agents that cannot take part
  const refused = await cli("node3", B.cur, ["upgrade", B.next]);
  assert.is(refused.code, 1, refused.out);
  assert.match(refused.out, /refused: node1 runs 0\.1\.0 without rolling upgrade support/);
  // the data path across versions: a switchover to the new agent's node and back, no loss
  const w = new Writer();
  w.start({ mysql: true, redis: true, redisWait: true, sample: true });
  await until("writes flowing", 30_000, async () => w.acked("mysql").length > 20);
  const { holder } = (await healthy("mysql"))!;
  const t0 = Date.now();
  for (const to of holder === "node3" ? ["node1", "node3"] : ["node3", holder]) {
    const r = await cli("node3", B.cur, ["switchover", "mysql", "--to", to], 120_000);
    assert.is(r.code, 0, r.out);
    await until(`MySQL on ${to}`, 30_000, async () => (await healthy("mysql"))?.holder === to);
  }
  await new Promise((r) => setTimeout(r, 500));
  await w.stop();
  const h = (await healthy("mysql"))!.holder;
  const lost = await lostMysql(w, h);
  figures.push(`mixed versions: two switchovers of MySQL (${holder} <-> node3), longest write pause ${w.longestPause("mysql", t0).ms} ms, ${w.acked("mysql").length} acked, ${lost.length} lost`);
  assert.equal(lost, [], "no acknowledged MySQL write lost across versions");
  assert.equal(w.twoWritable(), [], "never two writable primaries");
  // the old agents counted the new agents' new messages, if any reached them, as schema rejects, and kept running
  const leader = (await status("node1"))!;
  assert.ok(leader.quorum && leader.leader, "node1 (old) still has quorum and a leader");
});

s("rolling upgrade of the three agents under a writer through the VIP", async () => {
  if (!root) return;
  await labUp({ node1: B.cur, node2: B.cur, node3: B.cur });
  const w = new Writer();
  w.start({ mysql: true, redis: true, redisWait: true, sample: true });
  await until("writes flowing", 30_000, async () => w.acked("mysql").length > 20 && w.acked("redis").length > 20);
  const leader = (await status("node1"))!.leader!;
  const from = NODES.find((n) => n !== leader)!; // the operator's node is upgraded too, and not last
  const t0 = Date.now();
  const r = await cli(from, B.cur, ["upgrade", B.next, "--deadline", "60"]);
  const totalMs = Date.now() - t0;
  await new Promise((x) => setTimeout(x, 500));
  await w.stop();
  console.log(r.out.split("\n").map((l) => `    ${l}`).join("\n"));
  assert.is(r.code, 0, r.out);
  const st = (await upgradeInfo(from, B.next))!;
  for (const n of st.nodes) {
    assert.is(n.bundle, sha(B.next), `${n.node} runs the new bundle`);
    assert.is(n.version, "0.1.1-test");
    assert.is(n.upgrade?.step, "blessed", `${n.node} blessed`);
  }
  const order = [...r.out.matchAll(/^\S+ (node\d): upgraded to/gm)].map((m) => m[1]);
  assert.is(order[order.length - 1], leader, `the leader's node last: ${order.join(", ")}`);
  const m = (await healthy("mysql"))!;
  const lost = await lostMysql(w, m.holder);
  const rd = (await healthy("redis"))!;
  const lostR = await lostRedis(w, rd.holder, dataIp(rd.holder));
  const pm = w.longestPause("mysql", t0), pr = w.longestPause("redis", t0);
  figures.push(`rolling upgrade 0.1.0 -> 0.1.1-test of ${order.join(", ")} (from ${from}, leader ${leader}): total ${(totalMs / 1000).toFixed(1)} s; ` +
    `longest write pause mysql ${pm.ms} ms, redis ${pr.ms} ms; ${w.acked("mysql").length} + ${w.acked("redis").length} acked, ${lost.length} + ${lostR.length} lost`);
  for (const line of r.out.split("\n").filter((l) => /upgraded to/.test(l))) figures.push(`  ${line.replace(/^\S+ /, "")}`);
  figures.push(`  write pauses over 200 ms: mysql ${pauses(w, "mysql", t0).join(", ") || "none"}; redis ${pauses(w, "redis", t0).join(", ") || "none"}`);
  // what the Redis writer was told during its longest pause, and the switchovers' steps then (where the time goes)
  figures.push(`  redis's longest pause from ${new Date(pr.from).toISOString().slice(11, 23)}: ${w.errors("redis", pr.from, pr.from + pr.ms).join("; ") || "no errors (slow, not refused)"}`);
  const around = NODES.flatMap((n) => events(n).map((e) => ({ n, at: Date.parse(e.ts), d: e.detail })))
    .filter((e) => e.at >= pr.from - 1500 && e.at <= pr.from + pr.ms + 500 && /redis|vip|switchover|portal|freeze/i.test(e.d)).sort((a, b) => a.at - b.at);
  for (const e of around) figures.push(`    ${new Date(e.at).toISOString().slice(11, 23)} ${e.n} ${e.d.slice(0, 220)}`);
  assert.equal(lost, [], "no acknowledged MySQL write lost");
  assert.equal(lostR.map((x) => x.id), [], "no acknowledged (WAIT 1) Redis write lost");
  assert.equal(w.twoWritable(), [], "never two writable primaries");
  const st2 = await status(leader);
  assert.ok(st2 && !Object.keys(st2.flags).some((k) => k.startsWith("maint:")), "no node left in maintenance");
  const ev = events(from).map((e) => e.detail).filter((d) => /rolling upgrade/.test(d));
  assert.match(ev.join("\n"), /rolling upgrade to 0\.1\.1-test \(\w+\) done/);
});

s("a bundle that cannot join fails its gate on the first node, is rolled back there, and the rollout stops", async () => {
  if (!root) return;
  // the cluster as the previous case left it: every node on 0.1.1-test
  const leader = (await until("a leader", 30_000, async () => (await status("node1"))?.leader))!;
  const first = NODES.filter((n) => n !== leader).sort()[0]!;
  const from = leader; // the leader's node goes last: never reached
  const t0 = Date.now();
  const r = await cli(from, B.next, ["upgrade", B.broken, "--deadline", "20"]);
  const ms = Date.now() - t0;
  console.log(r.out.split("\n").map((l) => `    ${l}`).join("\n"));
  assert.is(r.code, 1, r.out);
  assert.match(r.out, new RegExp(`STOPPED at ${first}: not healthy by the deadline`));
  const st = (await until("the first node back on its old bundle", 60_000, async () => {
    const x = await upgradeInfo(from, B.next);
    return x?.nodes.find((n) => n.node === first)?.bundle === sha(B.next) ? x : null;
  }))!;
  for (const n of st.nodes) assert.is(n.bundle, sha(B.next), `${n.node} runs 0.1.1-test (${n.node === first ? "rolled back" : "not touched"})`);
  const f = st.nodes.find((n) => n.node === first)!;
  assert.is(f.upgrade?.step, "rolled-back");
  assert.match(f.upgrade?.why ?? "", /health gate did not pass/);
  assert.match(readFileSync(`${S}/${first}/state/bundles/guard.log`, "utf8"), /deadline passed: 0\.1\.2-broken rolled back/);
  const ev = events(from).find((e) => e.kind === "upgrade" && /STOPPED at/.test(e.detail));
  assert.ok(ev, "the event says why");
  const alarms = await until("the upgrade-failed alarm", 20_000, async () => {
    const a = await cli(first, B.next, ["alarms", "--json"], 30_000);
    return a.code === 0 && /upgrade-failed/.test(a.out) ? a.out : null;
  });
  assert.match(alarms, new RegExp(`upgrade stopped: ${first} failed its health gate`));
  const stl = await status(leader);
  assert.ok(stl && !(`maint:${first}` in stl.flags), "maintenance is off again once it is back");
  figures.push(`broken bundle (wire protocol 99), --deadline 20: rollout stopped at ${first} after ${(ms / 1000).toFixed(1)} s; back on its old bundle with quorum`);
  assert.ok(await healthy("mysql") && await healthy("redis"), "the data path is healthy");
});

if (!root) console.log("skipped: the lab needs root");
if (!existsSync(join(REPO, "node_modules"))) console.log("warning: node_modules missing");
s.run();
