// Whether a VM's mirror to a node can be rebuilt incrementally (issue 14 §2): pure.
//
// The holder's QEMU keeps one dirty bitmap per replica node on each disk's file node, named
// `bollard.<node>.<copy>`, added when the mirror to that node is attached and recording ever
// since (QEMU's docs/interop/bitmaps.rst): it holds every block written since that mirror began,
// a superset of what the node's copy may lack once the mirror is lost. `<copy>` is the identity
// of the node's disk files as that node reports them (vm-storage.ts copyId: inode and birth
// time), so a file made anew there is never taken for the old copy. A second, empty bitmap
// `bollard-ok.<node>.<copy>` is added once that mirror was in sync (its first copy complete):
// without it the node's copy may miss blocks no bitmap lists. Either missing, or the source QEMU
// restarted (QEMU's bitmaps here are not persistent: raw disks cannot store them), and the
// rebuild copies the whole disk.

export interface BitmapInfo {
  name: string;
  recording: boolean;
  busy: boolean;
  /** bytes marked dirty */
  count: number;
}

export const bitmapName = (node: string, copy: string) => `bollard.${node}.${copy}`;
export const okName = (node: string, copy: string) => `bollard-ok.${node}.${copy}`;

/** Names of bitmaps of `node` that are not of `copy` (stale: removed before a new mirror to it). */
export function staleBitmaps(names: readonly string[], node: string, copy: string | null): string[] {
  const keep = copy ? new Set([bitmapName(node, copy), okName(node, copy)]) : new Set<string>();
  return names.filter((n) => (n.startsWith(`bollard.${node}.`) || n.startsWith(`bollard-ok.${node}.`)) && !keep.has(n));
}

export type RebuildChoice =
  | { mode: "incremental"; bitmap: string; dirtyBytes: number; why: string }
  | { mode: "full"; why: string };

/**
 * How to (re)build the mirror of a VM's disks to `node`, whose copy is `copy` (null: the node
 * does not say). `disks`: each disk's bitmaps as QEMU lists them on its file node.
 */
export function rebuildChoice(node: string, copy: string | null, disks: readonly { disk: string; bitmaps: readonly BitmapInfo[] }[]): RebuildChoice {
  if (!copy) return { mode: "full", why: `${node} does not say which copy of the disks it holds: a full copy` };
  if (!disks.length) return { mode: "full", why: "no disks" };
  const bm = bitmapName(node, copy);
  let dirty = 0;
  for (const d of disks) {
    const b = d.bitmaps.find((x) => x.name === bm);
    if (!b) {
      const other = d.bitmaps.find((x) => x.name.startsWith(`bollard.${node}.`));
      return {
        mode: "full",
        why: other
          ? `${node}'s copy of ${d.disk} is not the one the dirty bitmap covers (its file was made anew): a full copy`
          : `no dirty bitmap covers ${d.disk} since ${node}'s copy (never mirrored there by this QEMU, or the source QEMU restarted): a full copy`,
      };
    }
    if (!d.bitmaps.some((x) => x.name === okName(node, copy))) return { mode: "full", why: `${node}'s copy of ${d.disk} never completed its first copy: a full copy` };
    if (!b.recording || b.busy) return { mode: "full", why: `the dirty bitmap of ${d.disk} for ${node} is ${b.busy ? "in use" : "not recording"}: a full copy` };
    dirty += b.count;
  }
  return { mode: "incremental", bitmap: bm, dirtyBytes: dirty, why: `${node} holds an older copy: only the ${dirty} bytes written since are copied (dirty bitmap)` };
}
