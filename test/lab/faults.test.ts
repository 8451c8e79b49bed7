// Faults smaller than a node, in the lab (issues 20 and 22): the primary's agent stalled, its
// MySQL, Redis or nginx killed or hung while the node is fine, a transaction cut in half on its
// way to the replicas, a power blip that brings the primary back before anyone failed it over.
// Each case runs under a MySQL writer and a Redis writer through the VIP (Redis writes count
// once WAIT 1 confirms a replica has them) and a sampler that reads every node's writability
// every 100 ms. Asserted, each time: no acknowledged write lost, never two writable MySQL or
// Redis primaries in one sample, and, once healed, the same data on every node. The write
// pauses are printed as figures (make bench-failover measures the lost node).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import {
  NODES, REPO, S, type Run, awaitOr, checkAfter, events, faultAt, healthy, lab, labFrame, pause, restore, sh, sqlLocal, startWriters, status, timeline, until,
} from "./ha-lab.ts";

const root = process.getuid?.() === 0;
const suiteOf = suite("faults smaller than a node, in the lab");
/** ONLY=text runs the cases whose name holds it (while working on one); make test runs them all */
const s = Object.assign((name: string, fn: () => Promise<void>) => (!process.env.ONLY || name.includes(process.env.ONLY) ? suiteOf(name, fn) : suiteOf.skip(name, fn)),
  { before: suiteOf.before, after: suiteOf.after, run: suiteOf.run });
const figures: string[] = [];

labFrame(s, figures);

const begin = () => startWriters();
const end = (name: string, r: Run, o: { nodes?: string[]; heal?: () => Promise<void> } = {}) => checkAfter(figures, name, r, o);

s("a stalled agent is not a dead node: the primary's agent stopped for 1 s, then 2 s", async () => {
  if (!root) return console.log("skipped: the lab needs root");
  const r = await begin();
  await lab("stall", r.holder, "1");
  await pause(2000);
  await lab("stall", r.holder, "2");
  await pause(3000);
  const tl = timeline(r.t0);
  const x = await end("agent stall 1 s + 2 s", r);
  assert.is(x.holder, r.holder, "the primary stays where it was");
  assert.not.ok(tl.some((l) => / fence fencing /.test(l)), `no fence:\n${tl.join("\n")}`);
  assert.not.ok(tl.some((l) => /step (failover|recover) \S+ step promote done/.test(l)), `no promotion:\n${tl.join("\n")}`);
  assert.ok(x.mysqlMs < 1000 && x.redisMs < 1000, `no outage: writes paused ${x.mysqlMs} ms (MySQL), ${x.redisMs} ms (Redis)`);
});

s("an agent stalled past the watchdog: the node is reset, the failover completes", async () => {
  if (!root) return;
  const r = await begin();
  void lab("stall", r.holder, "5").catch(() => undefined);
  const rest = NODES.filter((n) => n !== r.holder);
  await until("a new MySQL primary", 60_000, () => healthy("mysql", rest), 300);
  const tl = timeline(r.t0, rest);
  const x = await end("agent stalled past the watchdog", r, { nodes: rest, heal: async () => { await lab("power", r.holder, "on").catch(() => undefined); } });
  assert.ok(tl.some((l) => /its data path (did not answer|last answered)/.test(l)), `the leader saw the data path go down:\n${tl.join("\n")}`);
  assert.ok(tl.some((l) => /level \S+ CONFIRMED/.test(l)), `fenced with a proof before the promotion:\n${tl.join("\n")}`);
  assert.is.not(x.holder, r.holder);
});

s("a fence racing the node's return: the primary cut off for 1.3 s, heard again around the power-off", async () => {
  if (!root) return;
  const r = await begin();
  // The leader misses the holder at 1.2 s; its probe finds the data path cut too, so it fences.
  // The cut ends at 1.3 s: the holder is heard again before or after the power-off was sent.
  // Either order is right, the wrong one is an abandoned failover whose power-off lands anyway.
  await lab("partition", r.holder);
  await pause(1300);
  await lab("heal", r.holder);
  await pause(3000);
  const tl = timeline(r.t0);
  const fenced = tl.some((l) => / fence fencing /.test(l));
  if ((await lab("power", r.holder, "status").catch(() => "")).includes("off")) {
    await awaitOr(r.t0, "the failover after the fence", 60_000, async () => { const h = await healthy("mysql", NODES.filter((n) => n !== r.holder)); return h && h.holder !== r.holder ? h : null; });
  }
  const tl2 = timeline(r.t0);
  const x = await end("fence racing the return", r, { nodes: fenced ? NODES.filter((n) => n !== r.holder) : NODES, heal: async () => { if (fenced) await lab("power", r.holder, "on").catch(() => undefined); } });
  figures.push(`fence racing the return: ${fenced ? `fenced (${tl2.some((l) => /heard again, but its fence was issued/.test(l)) ? "heard again after the power-off was sent: the failover went on" : "the power-off landed before it was heard"}), mysql -> ${x.holder}` : "heard again before any fence was sent: no fence, no failover"}`);
  assert.not.ok(tl2.some((l) => /abandoned/.test(l) && fenced && tl2.some((m) => /level ipmi CONFIRMED/.test(m))), `no failover abandoned after its power-off was sent:\n${tl2.join("\n")}`);
  if (fenced) assert.ok(tl2.some((l) => /failover of mysql from \S+ to \S+ done/.test(l)), `a fence that was sent ends in a failover:\n${tl2.join("\n")}`);
});

s("a transaction cut in half on its way: the promotion discards it and says so", async () => {
  if (!root) return;
  const r = await begin();
  const pw = execFileSync("cat", [`${S}/secrets/mysql-app.pass`], { encoding: "utf8" }).trim();
  await sh("client", `MYSQL_PWD='${pw}' mariadb -h 198.18.0.10 -P 3307 -u app fms -e 'CREATE TABLE IF NOT EXISTS big (id INT AUTO_INCREMENT PRIMARY KEY, pad LONGBLOB)'`);
  // replication from the primary slowed to 2 Mbit/s (tc htb on its bond0, MySQL's port only):
  // a 4 MB transaction is on its way for 16 s, and the primary loses power 2.5 s into it
  await sh(r.holder, "tc qdisc add dev bond0 root handle 1: htb default 10 && tc class add dev bond0 parent 1: classid 1:10 htb rate 1gbit && " +
    "tc class add dev bond0 parent 1: classid 1:20 htb rate 2mbit && tc filter add dev bond0 parent 1: protocol ip prio 1 u32 match ip sport 3306 0xffff flowid 1:20");
  const big = sh("client", `MYSQL_PWD='${pw}' timeout 60 mariadb -h 198.18.0.10 -P 3307 -u app fms -e "INSERT INTO big (pad) VALUES (REPEAT('x', 4000000))" 2>&1`, 70_000);
  await pause(2500);
  await lab("power", r.holder, "off");
  const rest = NODES.filter((n) => n !== r.holder);
  const after = await until("a new MySQL primary", 60_000, () => healthy("mysql", rest), 300);
  const said = (await big).trim();
  const tl = timeline(r.t0, rest);
  const heal = async () => { await sh(r.holder, "tc qdisc del dev bond0 root 2>/dev/null; true"); await lab("power", r.holder, "on"); };
  const x = await end("transaction cut in half", r, { nodes: rest, heal: async () => { await heal(); } });
  const dropped = tl.find((l) => /discarded the incomplete transaction/.test(l));
  figures.push(`transaction cut in half: the 4 MB insert got "${said.split("\n").pop()}"; ${dropped ?? "nothing discarded"}`);
  assert.ok(dropped, `the promotion names the incomplete transaction it discarded:\n${tl.join("\n")}`);
  assert.is.not(after.holder, r.holder);
  assert.is((await sqlLocal(x.holder, "SELECT COUNT(*) FROM fms.big")).trim(), "0", "the unacknowledged 4 MB row is nowhere");
});

for (const op of ["kill", "hang"] as const) {
  s(`mysqld ${op === "kill" ? "killed (kill -9)" : "hung (SIGSTOP)"} on the primary's node: fenced by its agent, failed over, back as a replica`, async () => {
    if (!root) return;
    const r = await begin();
    await lab("service", r.holder, "mariadb", op);
    const f = await until("the fault in the lab's events.log", 10_000, async () => faultAt(r.t0, new RegExp(`${r.holder} mariadb (killed|hung)`)));
    // the node stays up (and may lead): healthy on all three, with another primary
    await awaitOr(r.t0, "a new MySQL primary", 60_000, async () => { const h = await healthy("mysql"); return h && h.holder !== r.holder ? h : null; });
    const tl = timeline(r.t0);
    const x = await end(`mysqld ${op}`, r, { heal: async () => { if (op === "hang") await lab("service", r.holder, "mariadb", "resume").catch(() => undefined); } });
    figures.push(`mysqld ${op}: first acknowledged write ${((r.w.acked("mysql").find((a) => a.at > f.end)?.at ?? NaN) - f.start) / 1000} s after the fault`);
    assert.ok(tl.some((l) => new RegExp(`${r.holder}'s mysql fenced by its agent`).test(l)), `the holder's agent fenced its server:\n${tl.join("\n")}`);
    assert.ok(tl.some((l) => /mysql start done/.test(l)), `and started it again:\n${tl.join("\n")}`);
    assert.is.not(x.holder, r.holder);
  });
}

for (const op of ["kill", "hang"] as const) {
  s(`redis-server ${op === "kill" ? "killed" : "hung"} on the master's node`, async () => {
    if (!root) return;
    const r = await begin();
    const rh = (await healthy("redis"))!.holder;
    await lab("service", rh, "redis", op);
    // the node stays up (and may lead): healthy on all three, with another master
    await awaitOr(r.t0, "a new Redis master", 60_000, async () => { const h = await healthy("redis"); return h && h.holder !== rh ? h : null; });
    const tl = timeline(r.t0);
    await end(`redis-server ${op}`, r, { heal: async () => { if (op === "hang") await lab("service", rh, "redis", "resume").catch(() => undefined); } });
    assert.ok(tl.some((l) => new RegExp(`${rh}'s redis fenced by its agent`).test(l)), `the master's agent fenced its server:\n${tl.join("\n")}`);
  });
}

for (const op of ["kill", "hang"] as const) {
  s(`nginx ${op === "kill" ? "killed" : "hung"} on the VIP holder: restarted at once`, async () => {
    if (!root) return;
    const r = await begin();
    const vip = (await status(r.leader))!.assignments.vip!;
    await lab("service", vip, "nginx", op);
    await pause(4000);
    const tl = timeline(r.t0, [vip]);
    await end(`nginx ${op}`, r);
    assert.ok(tl.some((l) => /portal restart done/.test(l)), `the portal was restarted:\n${tl.join("\n")}`);
  });
}

s("the primary's node powered off and on at once, three times in a row: never promoted on its own word", async () => {
  if (!root) return;
  let r = await begin();
  const first = r.at;
  for (let i = 1; i <= 3; i++) {
    const h = (await until("a primary", 60_000, () => healthy("mysql"), 300)).holder;
    await lab("power", h, "off");
    await lab("power", h, "on");
    // back: either the restarted node was compared with the replicas (recover), or, when it
    // came back after the leader had started fencing it, it was failed over (and is off now)
    const settled = await until(`the service settled after blip ${i}`, 90_000, async () => {
      const tl = timeline(r.t0);
      return tl.find((l) => /(recover|failover) of mysql from \S+ (to \S+ done|on \S+ confirmed)|mysql on \S+ confirmed as primary/.test(l)) ?? null;
    }, 300);
    if ((await lab("power", h, "status").catch(() => "")).includes("off")) await lab("power", h, "on");
    const back = await until(`three healthy nodes after blip ${i}`, 90_000, async () => { const m = await healthy("mysql"); const q = await healthy("redis"); return m && q ? m : null; }, 300);
    const tl = timeline(r.t0);
    const picks = tl.filter((l) => /step (recover|failover) (mysql|redis) step pickCandidate done/.test(l)).map((l) => l.replace(/^.*pickCandidate done in \d+ ms: /, ""));
    figures.push(`power blip ${i}: mysql ${h} -> ${back.holder}: ${picks.join(" | ").slice(0, 300)}`);
    assert.ok(settled, `blip ${i}: the leader compared positions or failed over`);
    assert.not.ok(tl.some((l) => new RegExp(`${h} lrm mysql promote done`).test(l) && !tl.some((m) => /mysql on \S+ confirmed|recover of mysql/.test(m))), `blip ${i}: ${h} was not promoted on its own word:\n${tl.join("\n")}`);
    if (i < 3) { await pause(1000); r = { ...r, t0: new Date(Date.now() - 50).toISOString() }; await ackAll(); }
  }
  await end("power blip x3", { ...r, at: first });
});

/** Each blip fails the service over: anti-flapping would hold the next one back. */
async function ackAll(): Promise<void> {
  const st = await until("a leader", 30_000, async () => { for (const n of NODES) { const x = await status(n); if (x?.role === "leader") return { n, x }; } return null; });
  for (const svc of ["mysql", "redis"]) {
    if (st.x.flags[`failover:${svc}`]) await lab("exec", st.n, "bollard", "ha", "ack", svc).catch(() => undefined);
  }
}

s.run();
