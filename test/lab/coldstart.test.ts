// The whole-room cold start, in the lab (issue 15 item 3): the equipment room loses power, all
// three nodes at once, under a MySQL writer and a Redis writer through the VIP (Redis writes count
// once WAIT 1 confirms a replica has them). Then all three come back; then, another time, only two,
// the old primary's node staying off until later. Asserted each time: the cluster forms, the most
// advanced MySQL and Redis win (no acknowledged write lost), never two writable primaries, and once
// every node is back the same data on each. The figure is BMC power-on to the first acknowledged
// write through the VIP, the nodes' boot (the lab starts their servers and agents) included, with
// where the time goes from the leader's events.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, type Run, awaitOr, caughtUp, checkAfter, healthy, lab, labFrame, sameData, startWriters, status, timeline, until } from "./ha-lab.ts";

const root = process.getuid?.() === 0;
const s = suite("whole-room cold start, in the lab");
const figures: string[] = [];

labFrame(s, figures);

/** Every node's power cut at the same moment (each BMC told at once). */
async function roomOff(): Promise<void> {
  await Promise.all(NODES.map((n) => lab("power", n, "off")));
}

/** Powers `nodes` on at once; returns when the BMCs were told (ms since the epoch). */
async function powerOn(nodes: string[]): Promise<number> {
  const t = Date.now();
  await Promise.all(nodes.map((n) => lab("power", n, "on")));
  return t;
}

/** ms from `t` to the first acknowledged write of each service after it. */
async function firstWrites(r: Run, t: number, what: string): Promise<{ mysql: number; redis: number }> {
  const first = (svc: "mysql" | "redis") => r.w.acked(svc).find((x) => x.at >= t)?.at;
  const got = await awaitOr(r.t0, `${what}: the first MySQL and Redis writes through the VIP`, 120_000, async () => {
    const m = first("mysql"), q = first("redis");
    return m !== undefined && q !== undefined ? { mysql: m - t, redis: q - t } : null;
  });
  return got;
}

/** Where the time went: the leader's placement/failover/recover events since `t0`, short. */
function story(t0: string): string {
  return timeline(t0).filter((l) => /(pick|placing|promote done|recover|fence .*confirmed|writable on|restarted from its AOF|formed|leader)/i.test(l)).slice(0, 14).map((l) => l.slice(0, 170)).join("\n    ");
}

s("the room loses power: all three nodes off, then all three on", async () => {
  if (!root) return console.log("skipped: the lab needs root");
  const r = await startWriters(figures);
  const mysqlBefore = r.holder;
  await roomOff();
  await new Promise((res) => setTimeout(res, 2000));
  const t = await powerOn(NODES);
  const first = await firstWrites(r, t, "all three back");
  const x = await checkAfter(figures, "cold start, all three back", r);
  figures.push(`cold start, all three back: first write ${first.mysql} ms (MySQL), ${first.redis} ms (Redis) after the BMCs' power-on; mysql ${mysqlBefore} -> ${x.holder}\n    ${story(r.t0)}`);
  // the register's old primary returned with everything: no replica had more
  const picks = timeline(r.t0).filter((l) => /mysql/.test(l) && /(pick|recover|placing)/.test(l));
  assert.ok(picks.length > 0 || x.holder === mysqlBefore, `the leader compared positions or kept the primary:\n${timeline(r.t0).join("\n")}`);
});

s("the room loses power and two nodes come back, the old primary's node staying off; it returns later and rejoins", async () => {
  if (!root) return console.log("skipped: the lab needs root");
  const r = await startWriters(figures);
  const old = r.holder;
  const rest = NODES.filter((n) => n !== old);
  const redisOld = (await healthy("redis"))?.holder;
  await roomOff();
  await new Promise((res) => setTimeout(res, 2000));
  const t = await powerOn(rest);
  const first = await firstWrites(r, t, "two back");
  // the old primary is off: its fence is its BMC's word that the power is off
  const tl = timeline(r.t0);
  assert.ok(tl.some((l) => new RegExp(`${old}.*(ipmi CONFIRMED|power is off|confirmed)`, "i").test(l) && /fenc/i.test(l)), `${old} was fenced before its service moved:\n${tl.join("\n")}`);
  const x = await checkAfter(figures, "cold start, two back", r, { nodes: rest });
  figures.push(`cold start, two back (${old} off; redis was on ${redisOld}): first write ${first.mysql} ms (MySQL), ${first.redis} ms (Redis) after the BMCs' power-on; mysql ${old} -> ${x.holder}\n    ${story(r.t0)}`);
  assert.ok(rest.includes(x.holder), "MySQL is on a node that came back");
  // the old primary's node returns: it rejoins as a replica of the new primary, with the same data
  const t2 = new Date().toISOString();
  await lab("power", old, "on");
  const m = await awaitOr(t2, `${old} back as a replica`, 120_000, async () => {
    const a = await healthy("mysql"), b = await healthy("redis");
    const st = await status(old);
    return a && b && !st?.ha?.heldOut?.mysql && !st?.ha?.heldOut?.redis && st?.ha?.facts?.mysql?.source === a.holder ? a : null;
  });
  assert.is(m.holder, x.holder, `the primary stayed on ${x.holder}: ${old} rejoined as its replica, not held out`);
  await caughtUp(m.holder);
  const same = await until("the same data on every node", 30_000, async () => { const d = await sameData(); return d.same ? d : null; }, 500).catch(() => sameData());
  assert.ok(same.same, `every node holds the same data once ${old} is back: ${same.detail}`);
  figures.push(`cold start, ${old} back later: rejoined as a replica of ${m.holder}`);
});

s.run();
