// The procedures' own commits of one manager step, merged into one register change where they
// agree (ha/manager.ts tick). A node holding both primaries that is lost starts a failover of
// MySQL and one of Redis together; they reach commitConfig in the same step, and committed one
// after the other, the second change waited for the first's round (about 50 ms in the lab), and
// then every node's portal reloaded nginx twice, the second reload (Redis's route) waiting for
// the first: about 0.2 s more before a client through the VIP reached the new Redis primary.
// One epoch with both changes lets each node apply them in one go. Two commits that set the same
// flag or assignment to different values are not merged: each keeps its own epoch.
// Failovers only (the caller says which): a planned switchover of both services to one node
// merged the same way made that node promote both, take the VIP and reload its portal at once,
// and the lab's rolling upgrade then paused Redis writes 1.0-1.3 s (four runs) against 0.7-0.9 s
// committed apart (two runs of the same code without the merge); a switchover has no fence or
// detection to save time on.
import type { Command } from "../bus/messages.ts";

type Apply = Extract<Command, { op: "apply" }>;
type Commit = { kind: "commit"; cmd: Command; own: boolean };
const WHY_MAX = 200;

/** Both commands set no key to two different values. */
function agree(a: Apply, b: Apply): boolean {
  for (const [k, v] of Object.entries(b.assign ?? {})) if (a.assign && k in a.assign && a.assign[k] !== v) return false;
  for (const [k, v] of Object.entries(b.flags ?? {})) if (a.flags && k in a.flags && a.flags[k] !== v) return false;
  return true;
}

/** The actions with every procedure's own `apply` commit that `mergeable` picks merged into the
 *  first of them where they agree; other actions, and their order, untouched. */
export function mergeOwnCommits<A extends { kind: string }>(actions: A[], mergeable: (a: A) => boolean = () => true): A[] {
  const out: A[] = [];
  let into: Commit | null = null;
  for (const a of actions) {
    const c = a as unknown as Commit;
    if (c.kind !== "commit" || !c.own || c.cmd.op !== "apply" || !mergeable(a)) { out.push(a); continue; }
    if (into && agree(into.cmd as Apply, c.cmd)) {
      const m = into.cmd as Apply;
      const assign = { ...m.assign, ...c.cmd.assign };
      const flags = { ...m.flags, ...c.cmd.flags };
      const why = `${m.why}; ${c.cmd.why}`;
      into.cmd = { op: "apply", why: why.length > WHY_MAX ? `${why.slice(0, WHY_MAX - 3)}...` : why, ...(Object.keys(assign).length ? { assign } : {}), ...(Object.keys(flags).length ? { flags } : {}) };
      continue;
    }
    const copy = { ...c, cmd: { ...c.cmd } } as Commit;
    if (!into) into = copy;
    out.push(copy as unknown as A);
  }
  return out;
}
