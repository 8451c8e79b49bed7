// Data-path HA in the lab (issue 4 §9), each case with a writer running through the VIP and
// the portal that records every acknowledged write. Needs root (the lab) and the bundle.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, REPO, S, Writer, dataIp, events, healthy, lab, lostMysql, lostRedis, sh, status, until } from "./ha-lab.ts";

const root = process.getuid?.() === 0;
const s = suite("data-path failover in the lab");
const figures: string[] = [];

/** Back to three healthy nodes: everything powered, healed, BMCs and SNMP up, fence flags gone. */
async function restore(): Promise<{ leader: string; holder: string }> {
  for (const n of NODES) {
    await lab("heal", n).catch(() => undefined);
    await lab("bmc", n, "up").catch(() => undefined);
    // a node fenced at the switches stays cut off until its ports are up again (unfence)
    for (const sw of ["switchA", "switchB"]) await lab("link", sw, n, "up").catch(() => undefined);
    const st = await status(n);
    if (!st) await lab("power", n, "on").catch(() => undefined);
  }
  for (const sw of ["switchA", "switchB"]) await sh(sw, "iptables -D INPUT -p udp --dport 161 -j DROP 2>/dev/null; true");
  return until("a healthy MySQL and Redis with three nodes", 60_000, async () => {
    const m = await healthy("mysql");
    const r = await healthy("redis");
    if (!m || !r) return null;
    const st = await status(m.leader);
    if (!st || Object.keys(st.flags).some((k) => k.startsWith("fenc"))) return null;
    // Each case fails over on purpose: acknowledge the last one, or anti-flapping holds the next.
    for (const svc of ["mysql", "redis"]) {
      if (st.flags[`failover:${svc}`] && !(Number(st.flags[`ack:${svc}`]) >= Number(st.flags[`failover:${svc}`]))) {
        await sh(m.leader, `node ${REPO}/dist/bollard.js --config ${S}/${m.leader}/bollard.yaml ha ack ${svc}`);
        return null;
      }
    }
    return m;
  }, 500);
}

/** The leader's event lines since `t0` (ISO), as one text for ordering checks. */
function timeline(leader: string, t0: string): string[] {
  return events(leader).filter((e) => e.ts >= t0).map((e) => `${e.ts.slice(11, 23)} ${e.kind} ${e.detail}`);
}

function before(lines: string[], a: RegExp, b: RegExp): boolean {
  const i = lines.findIndex((l) => a.test(l));
  const j = lines.findIndex((l) => b.test(l));
  return i >= 0 && j >= 0 && i < j;
}

s.before(async () => {
  if (!root) return;
  if (!existsSync(`${REPO}/dist/bollard.js`)) execFileSync("node", ["build.mjs"], { cwd: REPO });
  await lab("down");
  await lab("up");
});

s.after(async () => {
  if (!root) return;
  await lab("down");
  console.log(`figures:\n  ${figures.join("\n  ")}`);
});

async function failoverCase(name: string, fault: (holder: string) => Promise<void>, expectProof: RegExp, opts: { redis?: boolean } = {}) {
  const { holder } = await restore();
  const w = new Writer();
  w.start({ mysql: true, redis: opts.redis });
  await until("writes flowing", 20_000, async () => w.acked("mysql").length > 20);
  const t0 = new Date().toISOString();
  const at = Date.now();
  await fault(holder);
  const rest = NODES.filter((n) => n !== holder);
  const after = await until("a new MySQL primary", 60_000, () => healthy("mysql", rest), 300);
  await until("writes flowing again", 30_000, async () => w.gapAfter("mysql", at));
  await new Promise((r) => setTimeout(r, 1000));
  await w.stop();
  const gap = w.gapAfter("mysql", at)!;
  const lost = await lostMysql(w, after.holder);
  const tl = timeline(after.leader, t0);
  figures.push(`${name}: mysql ${holder} -> ${after.holder}, writes resumed ${(gap.gapMs / 1000).toFixed(2)} s after the fault, ${w.acked("mysql").length} acked, ${lost.length} lost`);
  assert.equal(lost, [], `no acknowledged MySQL write is lost (${name})`);
  assert.ok(tl.some((l) => expectProof.test(l)), `the fence proof is in the leader's event log:\n${tl.join("\n")}`);
  assert.ok(before(tl, /level .* CONFIRMED/, /step promote done|promote done/), `the fence is confirmed before the promotion:\n${tl.join("\n")}`);
  if (opts.redis) {
    const r = await until("a new Redis master", 30_000, () => healthy("redis", rest), 300);
    const lostR = await lostRedis(w, r.holder, dataIp(r.holder));
    const lagBound = 2000 + 2000; // min-replicas-max-lag 2 s plus the lag check's rounding (docs/redis.md)
    const late = lostR.filter((x) => x.at < at - lagBound);
    figures.push(`${name}: redis ${holder} -> ${r.holder}, ${w.acked("redis").length} acked, ${lostR.length} lost, all within ${lagBound} ms before the fault: ${late.length === 0}`);
    assert.equal(late, [], "Redis loses only writes acknowledged within the min-replicas-max-lag bound before the fault");
  }
  return { holder, after, w };
}

s("power off the MySQL primary's node: fenced by IPMI, promoted, nothing acknowledged lost", async () => {
  if (!root) return console.log("skipped: the lab needs root");
  await failoverCase("power-off", (h) => lab("power", h, "off").then(() => undefined), /ipmi CONFIRMED/, { redis: true });
});

s("kill -9 of everything on the primary's node", async () => {
  if (!root) return;
  await failoverCase("kill -9", (h) => lab("kill", h).then(() => undefined), /CONFIRMED/);
});

s("partition the primary's node: it self-fences, the majority promotes after its fence proof", async () => {
  if (!root) return;
  let minority = "";
  await failoverCase("partition", async (h) => {
    minority = h;
    await lab("partition", h);
    // R6: after quorum_loss the cut-off node refuses writes whatever it believes.
    await until(`${h} read-only`, 15_000, async () => (await sh(h, `mariadb -S ${S}/${h}/mysql/mysqld.sock -u root -N -e 'SELECT @@read_only'`)).trim() === "1" || !(await status(h)));
  }, /CONFIRMED/);
  assert.ok(minority);
});

s("BMC down and node lost: fencing falls back to the switch ports", async () => {
  if (!root) return;
  await failoverCase("bmc-down", async (h) => {
    await lab("bmc", h, "down");
    await lab("partition", h);
  }, /switch-ports CONFIRMED/);
});

s("BMC and switch management down: the leader waits out the self-fence deadline, then promotes", async () => {
  if (!root) return;
  await failoverCase("no-fence-path", async (h) => {
    await lab("bmc", h, "down");
    for (const sw of ["switchA", "switchB"]) await sh(sw, "iptables -I INPUT -p udp --dport 161 -j DROP");
    await lab("partition", h);
  }, /deadline CONFIRMED/);
});

s("planned switchover under load: no loss, a short write pause", async () => {
  if (!root) return;
  const { holder } = await restore();
  const target = NODES.find((n) => n !== holder)!;
  const w = new Writer();
  w.start({ mysql: true });
  await until("writes flowing", 20_000, async () => w.acked("mysql").length > 20);
  const at = Date.now();
  await sh(holder, `node ${REPO}/dist/bollard.js --config ${S}/${holder}/bollard.yaml switchover mysql --to ${target}`, 60_000);
  const after = await until("the switchover", 30_000, async () => { const h = await healthy("mysql"); return h?.holder === target ? h : null; });
  await new Promise((r) => setTimeout(r, 1000));
  await w.stop();
  const a = w.acked("mysql").filter((x) => x.at >= at);
  let pause = 0;
  for (let i = 1; i < a.length; i++) pause = Math.max(pause, a[i].at - a[i - 1].at);
  const lost = await lostMysql(w, after.holder);
  figures.push(`switchover: ${holder} -> ${target}, longest write pause ${pause} ms, ${lost.length} lost`);
  assert.equal(lost, []);
});

s("the old primary rejoins as a replica after power on", async () => {
  if (!root) return;
  const { holder } = await restore();
  await lab("power", holder, "off");
  const rest = NODES.filter((n) => n !== holder);
  const after = await until("a new primary", 60_000, () => healthy("mysql", rest), 300);
  await lab("power", holder, "on");
  await until(`${holder} replicating from ${after.holder}`, 60_000, async () => {
    const st = await status(holder);
    return st?.ha?.facts?.mysql?.role === "replica" && st.ha.facts.mysql.source === after.holder;
  }, 500);
});

s.run();
