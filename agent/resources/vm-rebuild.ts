// The dirty bitmaps that let a lost mirror be rebuilt incrementally (issue 14 §2; the decision:
// ha/vm-rebuild.ts). QEMU 7.2's blockdev-mirror takes no bitmap, so an incremental rebuild is
// two jobs on the holder's QEMU:
//   blockdev-mirror sync=none copy-mode=write-blocking   (on the format node d-DISK, to t-DISK)
//       every guest write from now on completes on both disks;
//   blockdev-backup sync=incremental bitmap=bollard.NODE.COPY bitmap-mode=on-success
//       (on the file node f-DISK below it, to b-DISK: a second NBD connection to the same export)
//       copies the blocks the bitmap lists. Its copy-before-write filter sits below the mirror's
//       filter, so a guest write to a block not yet copied first sends the block's old content,
//       then the mirror sends the new: the target never ends older than the source. On success
//       the bitmap keeps only what was written since the backup began; on failure it is merged
//       back whole (bitmaps.rst).
// The mirror is in sync once the backup concluded without error (mirrorFacts, vm-mirror.ts).
// Tested against real QEMU in test/broker/vm-rebuild.test.ts.
import { bitmapName, okName, staleBitmaps, type BitmapInfo } from "../ha/vm-rebuild.ts";
import type { VmDef } from "../ha/vm-types.ts";
import { nodeNames } from "./qemu-args.ts";
import type { Qmp } from "./qmp.ts";

/** bitmap granularity: 64 KiB, QEMU's default for raw files */
export const GRANULARITY = 65536;

interface NamedNode {
  "node-name": string;
  "dirty-bitmaps"?: { name: string; recording: boolean; busy: boolean; count: number; persistent?: boolean }[];
}

/** Each disk's bitmaps on its file node (query-named-block-nodes). */
export async function diskBitmaps(q: Qmp, def: VmDef): Promise<{ disk: string; bitmaps: BitmapInfo[] }[]> {
  const nodes = await q.execute<NamedNode[]>("query-named-block-nodes", { flat: true });
  return def.disks.map((d) => {
    const n = nodes.find((x) => x["node-name"] === nodeNames(d.name).file);
    return { disk: d.name, bitmaps: (n?.["dirty-bitmaps"] ?? []).map((b) => ({ name: b.name, recording: b.recording, busy: b.busy, count: b.count })) };
  });
}

/** Before a mirror to `node`: its stale bitmaps go; with `fresh`, its bitmap is made anew (a full copy follows). */
export async function prepareBitmaps(q: Qmp, def: VmDef, node: string, copy: string | null, fresh: boolean): Promise<void> {
  for (const d of await diskBitmaps(q, def)) {
    const file = nodeNames(d.disk).file;
    const names = d.bitmaps.map((b) => b.name);
    const drop = staleBitmaps(names, node, copy);
    if (fresh && copy) drop.push(...names.filter((n) => n === bitmapName(node, copy) || n === okName(node, copy)));
    for (const name of drop) await q.execute("block-dirty-bitmap-remove", { node: file, name });
    if (copy && (fresh || !names.includes(bitmapName(node, copy)))) {
      await q.execute("block-dirty-bitmap-add", { node: file, name: bitmapName(node, copy), granularity: GRANULARITY, persistent: false });
    }
  }
}

/** The mirror to `node` is in sync: its copy is complete, so its bitmap may serve a later rebuild. Idempotent. */
export async function markInSync(q: Qmp, def: VmDef, node: string, copy: string): Promise<void> {
  for (const d of await diskBitmaps(q, def)) {
    if (!d.bitmaps.some((b) => b.name === bitmapName(node, copy)) || d.bitmaps.some((b) => b.name === okName(node, copy))) continue;
    const file = nodeNames(d.disk).file;
    await q.execute("block-dirty-bitmap-add", { node: file, name: okName(node, copy), granularity: GRANULARITY, persistent: false, disabled: true });
  }
}

/** Starts the incremental copy of each disk (the mirror sync=none must run already). */
export async function startIncremental(q: Qmp, def: VmDef, host: string, port: number, exportOf: (disk: string) => string, bitmap: string, reconnectS: number): Promise<void> {
  const have = new Set((await q.execute<NamedNode[]>("query-named-block-nodes", { flat: true })).map((x) => x["node-name"]));
  for (const d of def.disks) {
    const n = nodeNames(d.name);
    if (!have.has(n.copy)) {
      await q.execute("blockdev-add", { driver: "nbd", "node-name": n.copy, server: { type: "inet", host, port: String(port) }, export: exportOf(d.name), "reconnect-delay": reconnectS }, 10_000);
    }
    await q.execute("blockdev-backup", {
      "job-id": n.rebuild, device: n.file, target: n.copy, sync: "incremental", bitmap, "bitmap-mode": "on-success",
      "on-source-error": "report", "on-target-error": "report", "auto-finalize": true, "auto-dismiss": false,
    });
  }
}
