// `bollard upgrade guard --dir BUNDLES --sha SHA` (internal): left behind by the agent that
// starts a trial (runtime/upgrade-component.ts), run from the bundle that was running, detached.
// It is the bundle upgrade's boot counting: if the trial is still there at its deadline (nobody
// blessed it, nobody rolled it back: the new agent cannot, or is not let), it puts `current`
// back (BundleStore.undo, atomic against a blessing) and stops the agent processes that run the
// bundle on trial, which systemd (the lab's supervisor) then starts again on the old one.
// It ends as soon as the trial is gone. Its lines go to BUNDLES/guard.log.
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Io } from "../cli/types.ts";
import { BundleStore, dirName } from "./bundle.ts";

const POLL_MS = 500;
const KILL_AFTER_MS = 5000;

const say = (io: Io, s: string) => io.out(`${new Date().toISOString()} guard[${process.pid}]: ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** PIDs whose command line runs `bundle` with the `agent` command (the agent, not a CLI). */
export function agentPids(bundle: string, procDir = "/proc"): number[] {
  const out: number[] = [];
  for (const d of readdirSync(procDir)) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const argv = readFileSync(join(procDir, d, "cmdline"), "utf8").split("\0");
      if (argv.includes(bundle) && argv.includes("agent")) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

export async function guard(dir: string, sha: string, io: Io): Promise<number> {
  const store = new BundleStore(dir);
  const t = store.trial();
  if (!t || t.sha !== sha) {
    say(io, `no trial of ${sha.slice(0, 12)} in ${dir}: nothing to guard`);
    return 0;
  }
  say(io, `guarding the trial of ${t.version} (${sha.slice(0, 12)}) until ${new Date(t.until).toISOString()}`);
  for (;;) {
    const now = Date.now();
    const cur = store.trial();
    if (!cur || cur.sha !== sha) {
      say(io, `the trial of ${t.version} ended (${store.rolledBack()?.sha === sha ? "rolled back" : "blessed"}): done`);
      return 0;
    }
    if (now >= cur.until) break;
    await sleep(Math.min(POLL_MS, cur.until - now));
  }
  const why = `its health gate did not pass within ${Math.round((t.until - t.startedAt) / 1000)} s (the trial's deadline)`;
  const r = store.undo(why, Date.now());
  if (!r.ok) {
    say(io, `not undone: ${r.error}`);
    return 0;
  }
  say(io, `deadline passed: ${t.version} rolled back to ${t.previous ?? "the image's bundle"}`);
  let bundle = join(dir, dirName(t.version, sha), "bollard.js");
  try { bundle = realpathSync(bundle); } catch { /* as it is */ }
  const pids = agentPids(bundle);
  for (const pid of pids) {
    try { process.kill(pid, "SIGTERM"); say(io, `SIGTERM to agent pid ${pid} (${bundle})`); } catch { /* gone */ }
  }
  const end = Date.now() + KILL_AFTER_MS;
  while (Date.now() < end && pids.some(alive)) await sleep(100);
  for (const pid of pids.filter(alive)) {
    try { process.kill(pid, "SIGKILL"); say(io, `SIGKILL to agent pid ${pid}`); } catch { /* gone */ }
  }
  return 0;
}

function alive(pid: number): boolean {
  try {
    return statSync(`/proc/${pid}`).isDirectory() && !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
