// The node's qemu-storage-daemon (issue 14 §2): it serves the disks of the VMs this node is the
// replica of as NBD exports on the node's data address, writable, so that their holders' QEMUs
// mirror to them (vm-mirror.ts). One daemon per node, daemonized (it outlives an agent restart
// and is found again by its pid file), driven over its QMP socket: blockdev-add of the disk file,
// block-export-add type=nbd; block-export-del mode=hard and blockdev-del to stop serving one.
// The file is opened with O_DIRECT where the filesystem allows it (cache.direct), and without
// image locking: the QEMU of a live migration's target opens the same file while it is served.
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../env/env.ts";
import type { VmDef } from "../ha/vm-types.ts";
import { exportName, storageArgs, vmPaths } from "./qemu-args.ts";
import { Qmp } from "./qmp.ts";
import { DriverError } from "./types.ts";
import { alive, makeDisk, readPid, runDaemon } from "./vm.ts";

export interface StorageOptions {
  vmsDir: string;
  bin: string;
  /** the node's data address: the NBD server listens there */
  address: string;
  port: number;
  log: Logger;
}

const ids = (vm: string, disk: string) => ({ node: `r.${vm}.${disk}`, exp: `x.${vm}.${disk}` });

export class StorageDaemon {
  private qmp: Qmp | null = null;
  /** per file: whether O_DIRECT worked (a tmpfs may refuse it) */
  private direct = true;

  constructor(private readonly o: StorageOptions) {}

  up(): boolean {
    return !!this.qmp?.isOpen;
  }

  /** The daemon runs and its QMP answers: found again by its pid file, or started. */
  async ensure(): Promise<void> {
    if (this.qmp?.isOpen) return;
    mkdirSync(this.o.vmsDir, { recursive: true, mode: 0o750 });
    const sock = join(this.o.vmsDir, "storage.qmp");
    const pid = readPid(join(this.o.vmsDir, "storage.pid"));
    if (!pid || !alive(pid)) {
      try {
        await runDaemon(this.o.bin, storageArgs({ dir: this.o.vmsDir, address: this.o.address, port: this.o.port }));
      } catch (e) {
        throw new DriverError("storage", `starting qemu-storage-daemon on ${this.o.address}:${this.o.port}: ${(e as Error).message}`, e);
      }
      this.o.log.info(`qemu-storage-daemon started: NBD on ${this.o.address}:${this.o.port}`);
    }
    this.qmp = await Qmp.connect(sock, { timeoutMs: 5000 });
  }

  /** VMs each of whose disks is exported now. */
  async exported(defs: readonly VmDef[]): Promise<string[]> {
    const q = this.need();
    const xs = await q.execute<{ id: string; "shutting-down": boolean }[]>("query-block-exports");
    const live = new Set(xs.filter((x) => !x["shutting-down"]).map((x) => x.id));
    return defs.filter((d) => d.disks.length && d.disks.every((k) => live.has(ids(d.name, k.name).exp))).map((d) => d.name);
  }

  /**
   * Which copy of each exported VM's disks this node holds: the files' inode and birth time,
   * so that a file made anew (lost, removed) is never taken for the copy a holder's dirty bitmap
   * covers (ha/vm-rebuild.ts). Null for a VM whose files cannot be read.
   */
  copies(defs: readonly VmDef[], vms: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const def of defs) {
      if (!vms.includes(def.name)) continue;
      const id = copyId(def.disks.map((d) => vmPaths(this.o.vmsDir, def.name).disk(d.name)));
      if (id) out[def.name] = id;
    }
    return out;
  }

  /** Serves each disk of `def` (made, empty and sparse, if it is not there yet). */
  async export(def: VmDef): Promise<void> {
    const q = this.need();
    const paths = vmPaths(this.o.vmsDir, def.name);
    mkdirSync(paths.dir, { recursive: true, mode: 0o750 });
    const have = new Set((await q.execute<{ id: string }[]>("query-block-exports")).map((x) => x.id));
    const nodes = new Set((await q.execute<{ "node-name": string }[]>("query-named-block-nodes", { flat: true })).map((x) => x["node-name"]));
    for (const d of def.disks) {
      const { node, exp } = ids(def.name, d.name);
      if (have.has(exp)) continue;
      makeDisk(paths.disk(d.name), d.sizeMb, null);
      if (!nodes.has(node)) await this.addFile(q, node, paths.disk(d.name));
      await q.execute("block-export-add", { type: "nbd", id: exp, "node-name": node, writable: true, name: exportName(def.name, d.name) });
    }
  }

  private async addFile(q: Qmp, node: string, file: string): Promise<void> {
    const add = (direct: boolean) => q.execute("blockdev-add", { driver: "file", "node-name": node, filename: file, locking: "off", cache: { direct, "no-flush": false } });
    if (this.direct) {
      try {
        return void (await add(true));
      } catch (e) {
        this.o.log.warn(`${file}: O_DIRECT refused (${(e as Error).message}); the replica is written through the page cache`);
        this.direct = false;
      }
    }
    await add(false);
  }

  /** Stops serving the disks of `def` (clients cut off), and closes their files. */
  async unexport(def: VmDef): Promise<void> {
    const q = this.need();
    const have = new Set((await q.execute<{ id: string }[]>("query-block-exports")).map((x) => x.id));
    for (const d of def.disks) {
      const { node, exp } = ids(def.name, d.name);
      if (have.has(exp)) {
        const gone = q.waitEvent("BLOCK_EXPORT_DELETED", (e) => e.data.id === exp, 5000).catch(() => undefined);
        await q.execute("block-export-del", { id: exp, mode: "hard" });
        await gone;
      }
      try {
        await q.execute("blockdev-del", { "node-name": node });
      } catch (e) {
        if (!/not find|not found/i.test((e as Error).message)) throw e;
      }
    }
  }

  close(): void {
    this.qmp?.close();
    this.qmp = null;
  }

  private need(): Qmp {
    if (!this.qmp?.isOpen) throw new DriverError("storage", "qemu-storage-daemon does not answer on its QMP socket");
    return this.qmp;
  }
}

/** The identity of a set of disk files (inode and birth time, base 36), or null when one is missing. */
export function copyId(files: readonly string[]): string | null {
  try {
    return files.map((f) => { const st = statSync(f, { bigint: true }); return `${st.ino.toString(36)}x${(st.birthtimeNs / 1000n).toString(36)}`; }).join("-");
  } catch {
    return null;
  }
}
