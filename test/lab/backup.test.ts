// Backups and point-in-time restore in the lab (issue 23), under a writer through the VIP: a base
// backup on demand, a power-off of the MySQL primary's node between it and a DROP TABLE (the
// binlog archive follows the new primary, no gap), a restore to one second before the drop into a
// new MariaDB beside the cluster (every acknowledged row before the point there, none sent after
// it); then a backup whose target is removed half way and a deliberately corrupted backup's
// verification: both end in an alarm, and `backup list` never shows them as good. A Redis
// snapshot is taken on a replica and restored beside the cluster. Then `restore --replace` makes
// that point the cluster's data under a second writer (refused while writes are stopped), every
// node ending with the same data, the old data in a pinned backup.
// The lab's agents get a backup: section (LAB_BACKUP=1, gen-ha.sh): targets $S/<node>/backup.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, REPO, S, Writer, bollard, dataIp, healthy, lab, labFrame, pause, sh, sqlLocal, until } from "./ha-lab.ts";

process.env.LAB_BACKUP = "1";
process.env.LAB_BACKUP_VERIFY_S = "30";
const root = process.getuid?.() === 0;
const s = suite("backups and point-in-time restore in the lab");
const figures: string[] = [];
labFrame(s, figures);

interface Listed { id: string; kind: string; node: string; storedOn: string; state: string; good: boolean; dir: string; startedAt: string; finishedAt: string; bytes: number; detail: Record<string, unknown>; pinned?: string }
const list = async (node: string): Promise<Listed[]> => (JSON.parse(await bollard(node, "backup list --json")) as { backups: Listed[] }).backups;
const archiveStatus = async (node: string) => JSON.parse(await bollard(node, "backup status --json")).archive as { node: string; primary: string | null; lastGtid: string | null; behind: number | null; gap: string | null; running: boolean; lagS: number | null; caughtUpSeq: number | null } | null;
const alarms = async (node: string) => (JSON.parse(await bollard(node, "alarms --json")) as { active: { id: string; rule: string; detail: string | null }[] }).active;

s("base backup, failover, DROP TABLE, restore to 1 s before it; a vanished target and a corrupted backup are alarms", async () => {
  if (!root) return console.log("  (skipped: the lab needs root)");
  const m = await until("a healthy MySQL", 90_000, () => healthy("mysql"));
  const w = new Writer();
  w.start({ mysql: true });
  try {
    await until("writes flowing", 30_000, async () => w.acked("mysql").length > 20);
    // the archive streams from the primary, on another node
    const a0 = await until("the binlog archive streaming from the primary", 30_000, async () => { const a = await archiveStatus("node1"); return a?.running && a.primary === m.holder ? a : null; });
    assert.is.not(a0.node, m.holder, "the archive is not on the primary's node");
    // a base backup on demand
    const t0 = Date.now();
    const out = await bollard("node1", "backup now mysql", 120_000);
    const backupMs = Date.now() - t0;
    assert.match(out, /mysql backup \S+ complete: taken on node\d, stored on node\d/);
    const [base] = (await list("node1")).filter((b) => b.kind === "mysql");
    assert.ok(base && base.good, "the base backup is listed as good");
    assert.is.not(base!.node, m.holder, "never taken on the primary");
    assert.is.not(base!.storedOn, base!.node, "stored on another node than it was taken on");
    const lagUnderWriter = await archiveStatus("node1");
    // a Redis snapshot on a replica, restored beside the cluster
    const rout = await bollard("node1", "backup now redis", 120_000);
    const rid = /redis backup (\S+) complete: taken on (node\d)/.exec(rout);
    assert.ok(rid, rout);
    const rb = (await list("node1")).find((b) => b.id === rid![1])!;
    assert.ok(rb.good && rb.kind === "redis");
    const rres = await bollard("node1", `restore redis --backup ${rb.id}`);
    const rpid = /\(pid (\d+)\) on 127\.0\.0\.1:(\d+)/.exec(rres);
    assert.ok(rpid, rres);
    const keys = Number((await sh("node1", `redis-cli -h 127.0.0.1 -p ${rpid![2]} DBSIZE`)).trim());
    await sh("node1", `kill ${rpid![1]}`);
    assert.is(keys, rb.detail.keys, "the restored Redis has the snapshot's keys");
    // a failover: the primary's node is powered off
    await lab("power", m.holder, "off");
    const rest = NODES.filter((n) => n !== m.holder);
    const after = await until("a new MySQL primary", 90_000, () => healthy("mysql", rest), 300);
    await until("writes through the VIP again", 60_000, async () => w.acked("mysql").some((x) => x.at > Date.now() - 1000));
    const a1 = await until("the archive following the new primary", 60_000, async () => {
      // under the writer: streaming from it, and holding what it had at a refresh since (lagS is
      // bounded by the 5 s refresh period)
      for (const n of rest) { const a = await archiveStatus(n); if (a?.primary === after.holder && a.running && a.lagS !== null && a.lagS < 12 && a.caughtUpSeq !== null) return a; }
      return null;
    });
    assert.is(a1.gap, null, "no gap across the failover");
    await pause(2000);
    // the drop, at a recorded time; the writer stops just before (it would create the table
    // again), once it is seen writing steadily (the rows between the point and the drop)
    // the drop will be 200 ms from when the writer stops, and the point a second before it: the
    // writer stops once it has acknowledged rows after that point (a write can stall for a moment
    // on the shared machine)
    const dropMs = await until("rows written after the point to be", 60_000, async () => {
      const at = Date.now() + 200;
      const pt = Math.floor((at - 1000) / 1000) * 1000;
      return w.acked("mysql").filter((x) => x.at >= pt).length >= 10 ? at : null;
    }, 20);
    await w.stop();
    await pause(Math.max(0, dropMs - Date.now()));
    await sqlLocal(after.holder, "DROP TABLE fms.writes");
    await until("the archive holding the drop", 30_000, async () => { for (const n of rest) { const a = await archiveStatus(n); if (a?.primary === after.holder && a.behind === 0) return true; } return null; });
    const point = new Date(Math.floor((dropMs - 1000) / 1000) * 1000);
    const at = rest.find((n) => n !== after.holder)!;
    const dry = await bollard(at, `restore mysql --to-time ${point.toISOString()} --dry-run`);
    assert.match(dry, new RegExp(`plan: base backup ${base!.id} .* reaching gtid 0-\\d+-\\d+`));
    const r0 = Date.now();
    const res = await bollard(at, `restore mysql --to-time ${point.toISOString()}`, 300_000);
    const restoreMs = Date.now() - r0;
    const sock = /mariadb --socket=(\S+)/.exec(res)?.[1];
    const pid = /\(pid (\d+)\)/.exec(res)?.[1];
    assert.ok(sock && pid, res);
    const rows = (await sh(at, `mariadb -S ${sock} -u root -N -e "SELECT id FROM fms.writes" 2>&1`, 30_000)).trim().split("\n").filter(Boolean).map(Number);
    await sh(at, `kill ${pid}`);
    const have = new Set(rows);
    const acked = w.acked("mysql");
    const mustHave = acked.filter((x) => x.at < point.getTime());
    assert.ok(mustHave.length > 50, `${mustHave.length} rows acked before the point`);
    assert.equal(mustHave.filter((x) => !have.has(x.id)).map((x) => x.id), [], "every row acknowledged before the point is restored");
    // the writer sends row i only after row i-1's acknowledgement: a row whose predecessor was
    // acknowledged at or after the point was sent after it
    const sentAfter = acked.filter((x, i) => i > 0 && acked[i - 1]!.at >= point.getTime());
    assert.ok(sentAfter.length > 0, `the writer wrote after the point ${point.toISOString()} (drop ${new Date(dropMs).toISOString()}; last acks: ${acked.slice(-5).map((x) => `${x.id}@${new Date(x.at).toISOString()}`).join(" ")}; ${acked.length} acked)`);
    assert.equal(sentAfter.filter((x) => have.has(x.id)).map((x) => x.id), [], "no row sent after the point is restored");
    assert.ok(rows.some((id) => acked.find((x) => x.id === id)!.at > Date.parse(base!.finishedAt) + 1000), "rows from after the base backup came from the archive");
    figures.push(`base backup (lab, ${(base!.bytes / 1e6).toFixed(1)} MB): ${backupMs} ms end to end; restore to a point across a failover: ${restoreMs} ms; ` +
      `archive lag under the writer: ${lagUnderWriter?.lagS?.toFixed(1)} s, ${lagUnderWriter?.behind} trx behind; ${rows.length} rows restored, ${mustHave.length} acked before the point`);

    // restore --replace (issue 23 item 3): that point becomes the data of all three nodes
    await replaceStep({ old: m.holder, primary: after.holder, at, point, have, firstWriter: new Set(acked.map((x) => x.id)) });

    // a backup whose target is removed half way: the backup's directory on the storing node
    // (<id>.tmp) vanishes while mariadb-backup writes into it
    const req = bollard(at, "backup now mysql", 120_000).then(() => "ok", (e: Error) => e.message);
    const tmp = await until("a backup in progress", 60_000, async () => {
      for (const n of NODES) {
        const d = join(S, n, "backup", "mysql");
        const t = existsSync(d) ? readdirSync(d).find((x) => x.endsWith(".tmp")) : undefined;
        if (t) return { id: t.slice(0, -4), dir: join(d, t) };
      }
      return null;
    }, 20);
    await pause(300);
    rmSync(tmp.dir, { recursive: true, force: true });
    const said = await req;
    assert.match(said, /failed/, "the backup command says it failed");
    const l2 = await list(at);
    const kept = l2.filter((b) => b.kind === "mysql" && b.pinned).reverse();
    assert.is(kept.length, 2, "the pre-replace backups, pinned");
    assert.equal(l2.filter((b) => b.kind === "mysql" && !b.pinned).map((b) => b.id), [base!.id], "the half backup is not listed");
    await until("the backup-failed alarm", 60_000, async () => (await alarms(at)).find((x) => x.rule === "backup-failed"));

    // a corrupted backup: one byte of the newest backup's table (the pinned pre-replace one, which
    // the verification job takes: the newest) changed; the next verification finds it
    const live = (await list(at)).find((b) => b.id === kept[0]!.id)!;
    // its largest table file (a .ibd in a full backup, a .delta in an incremental one)
    const files = (readdirSync(live.dir, { recursive: true }) as string[]).filter((x) => /\.(ibd|delta)$/.test(x)).map((x) => ({ x, n: statSync(join(live.dir, x)).size }));
    const name = files.sort((a, b) => b.n - a.n)[0]!.x;
    const f = join(live.dir, name);
    const bytes = readFileSync(f);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = bytes[mid]! ^ 0xff;
    writeFileSync(f, bytes);
    const v = await until("the verification alarm", 120_000, async () => (await alarms(at)).find((x) => x.rule === "backup-verify-failed"));
    assert.ok((v.detail ?? "").includes(`checksums: ${name} changed`), `${v.detail} names ${name}`);
    const l3 = await list(at);
    const b3 = l3.find((b) => b.id === live.id)!;
    assert.is(b3.state, "bad");
    assert.is(b3.good, false);
    assert.match(await bollard(at, "backup list"), /BAD \(checksums/);
    // the bad one is never offered: a point after it is planned from a good backup
    const last = (await archiveStatus(at))?.lastGtid;
    assert.ok(last, "the archive's last GTID");
    const later = await bollard(at, `restore mysql --to-gtid ${last} --dry-run`);
    const from = /^plan: base backup (\S+) /.exec(later)?.[1];
    assert.ok(from && from !== live.id && l3.find((b) => b.id === from)?.good, `planned from a good backup, not the bad one: ${later}`);
  } catch (e) {
    // what the agents said about backups, for the one reading the failure (the lab goes down after)
    const art = join(REPO, "test-artifacts", "backup-lab");
    mkdirSync(art, { recursive: true });
    for (const n of NODES) {
      for (const f of ["supervisor.log", "agent.log"]) {
        const p = join(S, n, f);
        if (existsSync(p)) writeFileSync(join(art, `${n}-${f}`), readFileSync(p, "utf8").split("\n").filter((l) => /backup|archive|restore|verif/i.test(l)).slice(-300).join("\n"));
      }
    }
    console.log(`  (the agents' backup lines: ${art})`);
    throw e;
  } finally {
    await w.stop();
  }
});

const restoreEvents = (node: string, since: number) => readFileSync(join(S, node, "state", "events.jsonl"), "utf8").trim().split("\n")
  .map((l) => JSON.parse(l) as { ts: string; kind: string; detail: string }).filter((e) => e.kind === "restore" && Date.parse(e.ts) >= since);

/** A `restore --replace` whose command dies half way: one replica's applier is stopped, so the
 *  command waits for it after loading; it is killed there (SIGKILL, by its PID). Writes stay
 *  stopped, the writes-down alarm names the replace, and --abort resumes writes and says the data
 *  is the restored point; the replica catches up once its applier runs again. */
async function deadCommand(o: { old: string; primary: string; at: string; point: Date }, w: Writer): Promise<void> {
  const lagging = NODES.find((n) => n !== o.primary && n !== o.at)!;
  await sqlLocal(lagging, "STOP SLAVE SQL_THREAD");
  const k0 = Date.now();
  // `ip netns exec` execs the command: the child's PID is the CLI's
  const cli = spawn("ip", ["netns", "exec", o.at, process.execPath, `${REPO}/dist/bollard.js`, "--config", `${S}/${o.at}/bollard.yaml`, "restore", "mysql", "--to-time", o.point.toISOString(), "--replace", "--confirm", "lab"], { stdio: "ignore" });
  try {
    await until("the dead command's load", 120_000, async () => restoreEvents(o.at, k0).some((e) => /loaded into node\d/.test(e.detail)), 100);
  } finally {
    cli.kill("SIGKILL");
  }
  const stopped = Date.parse(restoreEvents(o.at, k0).find((e) => /writes stopped: node\d's/.test(e.detail))!.ts);
  const alarm = await until("writes-down naming the replace", 30_000, async () => (await alarms(o.at)).find((a) => a.rule === "writes-down" && /writes stopped: restore --replace/.test(a.detail ?? "")));
  const alarmS = ((Date.now() - stopped) / 1000).toFixed(1);
  assert.match(alarm.detail ?? "", /bollard restore mysql --replace --abort/);
  assert.equal(w.acked("mysql").filter((x) => x.at >= stopped).map((x) => x.id), [], "writes stay stopped after the command died");
  const ab = await bollard(o.at, "restore mysql --replace --abort --confirm lab");
  const a0 = Date.now();
  assert.match(ab, /aborted \(step loaded\): writes resume; the data is the restored point \(loaded into the primary; replicas catch up through replication\)/);
  assert.match(await bollard(o.at, "restore mysql --replace --abort --confirm lab"), /no restore --replace under way/);
  await until("writes through the VIP after --abort", 30_000, async () => w.acked("mysql").some((x) => x.at > a0));
  await sqlLocal(lagging, "START SLAVE SQL_THREAD");
  // the scratch server the dead command left was stopped by --abort
  const stepDir = join(S, o.at, "state", "restore");
  const step = JSON.parse(readFileSync(join(stepDir, readdirSync(stepDir).filter((f) => f.startsWith("replace-")).sort().pop()!), "utf8")) as { step: string; scratchPid: number; scratchDir: string };
  assert.is(step.step, "loaded");
  assert.not.ok(existsSync(`/proc/${step.scratchPid}`) && readFileSync(`/proc/${step.scratchPid}/cmdline`, "utf8").includes(step.scratchDir), "the dead command's scratch server is stopped");
  assert.not.ok(existsSync(step.scratchDir), "and its directory removed");
  figures.push(`restore --replace killed after its load: the writes-down alarm named it ${alarmS} s after the stop (writes_down_alarm_ms 5 s); --abort resumed writes`);
}

/** restore --replace under a second writer through the VIP: the powered-off old primary back
 *  first, so that all three nodes take part. */
async function replaceStep(o: { old: string; primary: string; at: string; point: Date; have: Set<number>; firstWriter: Set<number> }): Promise<void> {
  const s0 = Date.now();
  await lab("power", o.old, "on");
  const pos = async (n: string, v: string) => (await sqlLocal(n, `SELECT @@${v}`)).trim();
  await until(`${o.old} back and replicating from ${o.primary}`, 90_000, async () =>
    /\tYes\tYes\t/.test(await sqlLocal(o.old, "SHOW SLAVE STATUS")) && (await pos(o.old, "gtid_current_pos")) === (await pos(o.primary, "gtid_binlog_pos")), 500);
  const w = new Writer();
  w.start({ mysql: true });
  try {
    await until("the second writer writing", 30_000, async () => w.acked("mysql").length > 20);
    const d0 = Date.now();
    await deadCommand(o, w);
    const t0 = Date.now();
    const out = await bollard(o.at, `restore mysql --to-time ${o.point.toISOString()} --replace --confirm lab`, 300_000);
    const replaceMs = Date.now() - t0;
    assert.match(out, /writes resume; done in/);
    // the event log: when writes stopped and when every replica had the restored point
    const evs = restoreEvents(o.at, t0);
    const ts = (re: RegExp) => Date.parse(evs.find((e) => re.test(e.detail))?.ts ?? "");
    const stopped = ts(/writes stopped: node\d's MySQL read_only=1 at gtid/), reached = ts(/every replica heard reached/), resumed = ts(/writes resume/);
    assert.ok(stopped && reached && resumed, `restore events: ${evs.map((e) => e.detail).join(" | ")}`);
    await until("writes through the VIP after the replace", 30_000, async () => w.acked("mysql").some((x) => x.at > resumed));
    await w.stop();
    const acked = w.acked("mysql");
    assert.equal(acked.filter((x) => x.at >= stopped && x.at <= reached).map((x) => x.id), [], "no write acknowledged while writes were stopped");
    const refused = readFileSync(join(w.dir, "mysql.errors"), "utf8").trim().split("\n").filter((l) => { const at = Number(l.split(" ")[0]); return at >= t0 && at <= resumed + 5000; });
    assert.ok(refused.some((l) => /read-only|read_only/i.test(l)), `the writer was refused as read-only: ${refused.slice(0, 3).join(" | ")}`);
    let gap = 0;
    for (let i = 1; i < acked.length; i++) if (acked[i]!.at > t0) gap = Math.max(gap, acked[i]!.at - acked[i - 1]!.at);
    // every node the same: GTIDs, then CHECKSUM TABLE of every user table on all three
    const want = await pos(o.primary, "gtid_binlog_pos");
    await until("all three at the primary's GTID", 30_000, async () => { for (const n of NODES) if ((await pos(n, "gtid_current_pos")) !== want) return null; return true; });
    const tables = (await sqlLocal(o.primary, "SELECT GROUP_CONCAT(CONCAT(table_schema, '.', table_name) ORDER BY 1) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql','sys','information_schema','performance_schema','bollard','bollard_site')")).trim();
    assert.match(tables, /fms\.writes/, "the dropped table is back");
    const sums = await Promise.all(NODES.map(async (n) => (await sqlLocal(n, `CHECKSUM TABLE ${tables}`)).trim()));
    assert.ok(sums[0]!.length > 0 && sums.every((x) => x === sums[0]), `checksums differ: ${NODES.map((n, i) => `${n}: ${sums[i]}`).join(" / ")}`);
    const ids = new Set((await sqlLocal(o.old, "SELECT id FROM fms.writes")).trim().split("\n").filter(Boolean).map(Number));
    assert.equal([...ids].filter((id) => o.firstWriter.has(id)).sort(), [...o.have].sort(), "the first writer's rows are exactly the restored point's");
    assert.equal(acked.filter((x) => x.at < stopped && ids.has(x.id)).map((x) => x.id), [], "rows written before the replace are not in the data (they are in the pinned backup)");
    assert.ok(acked.filter((x) => x.at > resumed).every((x) => ids.has(x.id)), "rows written after it are");
    const pinned = (await list(o.at)).filter((b) => b.kind === "mysql" && b.pinned);
    assert.is(pinned.length, 2, "the dead command's and this one's");
    assert.match(pinned[0]!.pinned!, /old data before restore --replace/);
    const stopS = /writes stopped ([\d.]+) s;/.exec(evs.find((e) => /writes resume/.test(e.detail))!.detail)?.[1];
    figures.push(`restore --replace (lab, ${o.have.size} rows at the point): ${replaceMs} ms end to end; writes stopped ${stopS} s (flag set to cleared, by the command), longest gap between the writer's acks ${gap} ms, ` +
      `${refused.length} refused or failed writes; pre-replace backup ${(pinned[1]!.bytes / 1e6).toFixed(1)} MB; ` +
      `lab time of these steps ${((Date.now() - s0) / 1000).toFixed(1)} s (old primary back ${((d0 - s0) / 1000).toFixed(1)} s, the dead command and --abort ${((t0 - d0) / 1000).toFixed(1)} s)`);
  } finally {
    await w.stop();
  }
}

s.run();
