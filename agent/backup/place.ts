// Where a backup is taken, where it is stored, which node archives the binlogs (issue 23 items
// 1, 2, 4): pure, from what every agent knows alike (the committed config's holders and flags,
// and which members are up), so that all agree on one node without talking about it.
//   - a base backup or an RDB snapshot is taken on a replica, never on the primary: an up member
//     that does not hold the service, is not in maintenance, is not fenced; ties broken by name
//     (the lowest), so every agent picks the same one;
//   - it is stored on another up member (never the one it was taken on): a non-holder first
//     (the primary's disks carry the clients' load), then by name;
//   - the binlog archive runs on an up non-holder of MySQL, staying where it runs while that
//     node qualifies (a move restarts the stream), else the lowest name.
export interface PlaceInput {
  /** every configured member, in any order */
  members: string[];
  /** the members this agent sees up (itself included) */
  up: string[];
  /** the node that holds the service (its primary), or null */
  holder: string | null;
  /** members in maintenance or fenced: they take, store and archive nothing */
  excluded: string[];
}

export type Placement = { ok: true; take: string; store: string } | { ok: false; error: string };

const byName = (a: string, b: string) => a.localeCompare(b);

export function whereToBackup(svc: string, i: PlaceInput): Placement {
  if (!i.holder) return { ok: false, error: `${svc} has no primary: nothing to back up from (a replica copies the primary)` };
  const why = (n: string) => (!i.up.includes(n) ? "down" : i.excluded.includes(n) ? "in maintenance or fenced" : null);
  const replicas = i.members.filter((n) => n !== i.holder).sort(byName);
  const take = replicas.find((n) => why(n) === null);
  if (!take) {
    const reasons = replicas.map((n) => `${n} ${why(n)}`).join(", ");
    return { ok: false, error: `no replica of ${svc} to take a backup on (${reasons || "no other member"}); never taken on the primary ${i.holder}` };
  }
  const stores = i.members.filter((n) => n !== take && i.up.includes(n)).sort((a, b) => Number(a === i.holder) - Number(b === i.holder) || byName(a, b));
  const store = stores[0];
  if (!store) return { ok: false, error: `no up member other than ${take} to store a backup on` };
  return { ok: true, take, store };
}

export function whereToArchive(i: PlaceInput, current: string | null): { ok: true; node: string } | { ok: false; error: string } {
  if (!i.holder) return { ok: false, error: "mysql has no primary: nothing to archive" };
  const fit = (n: string) => n !== i.holder && i.up.includes(n) && !i.excluded.includes(n);
  if (current && i.members.includes(current) && fit(current)) return { ok: true, node: current };
  const node = i.members.filter(fit).sort(byName)[0];
  return node ? { ok: true, node } : { ok: false, error: `no up member other than the primary ${i.holder} to archive its binlogs on` };
}
