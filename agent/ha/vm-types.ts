// What the VM managers (vm-manager.ts on the leader, vm-local.ts on every node) and the VM
// runtime share (DESIGN §5b, issue 14): a VM's definition as the config gives it, and the
// facts a node reports about the VMs it runs, the replica disks it serves and its mirrors.
// Plain data: the simulator builds the same shapes.

export type AntiAffinity = "hard" | "soft";

export interface VmDisk {
  /** the disk's name in vms.disks: its file is <vms.dir>/<vm>/<disk>.raw on the holder and on the replica */
  name: string;
  sizeMb: number;
  /** a raw image the disk is made from when its file does not exist yet (else it starts empty) */
  image: string | null;
}

export interface VmNic {
  bridge: string;
  mac: string;
}

export interface VmDef {
  name: string;
  vcpus: number;
  memoryMb: number;
  disks: VmDisk[];
  nics: VmNic[];
  group: string | null;
  /** higher first: placed, restarted and migrated before lower ones */
  priority: number;
  /** other VMs, or the services "mysql" and "redis": started only once these run (are writable) */
  dependsOn: string[];
  /** placed and started by the leader without an operator's `vm start` */
  autostart: boolean;
  /** direct kernel boot (the lab's guests); null: boot from the first disk */
  kernel: { path: string; initrd: string | null; append: string } | null;
}

/** The definitions the leader places: every VM, the groups, what each node can hold. */
export interface VmCatalog {
  defs: VmDef[];
  groups: Record<string, { antiAffinity: AntiAffinity }>;
  /** memory (MB) each node gives to VMs */
  capacity: Record<string, number>;
}

/** Services a VM may depend on (the data path's, ha/flags.ts). */
export const VM_SERVICE_DEPS = ["mysql", "redis"] as const;
export const isServiceDep = (d: string): d is "mysql" | "redis" => (VM_SERVICE_DEPS as readonly string[]).includes(d);

/**
 * A VM as its node sees it:
 * - running, paused: a QEMU process whose guest runs / is stopped (by the agent or an I/O error)
 * - incoming: a QEMU waiting for (or receiving) a live migration, its guest not started
 * - migrated: the source QEMU after a completed live migration (postmigrate): it never runs again
 * - stopped: no QEMU process
 * - failed: no QEMU process, and this node gave up starting it (too many failures)
 */
export type VmRunState = "running" | "paused" | "incoming" | "migrated" | "stopped" | "failed";

export interface MirrorFacts {
  /** the node whose export the disks are mirrored to */
  to: string;
  /** syncing: the first copy is under way; ready: every disk in write-blocking sync; broken:
   *  a job failed or the target stopped answering (guest writes are no longer copied) */
  state: "syncing" | "ready" | "broken";
  /** 0..1 of the first copy */
  done: number;
  error?: string;
}

export interface VmFacts {
  name: string;
  state: VmRunState;
  /** the QEMU process: "pid/start time in clock ticks"; changes with every start */
  inst?: string;
  /** wall ms the QEMU process started */
  startedAt?: number;
  mirror: MirrorFacts | null;
  /** a live migration out of this node */
  migration?: { to: string; status: string; ms?: number; downtimeMs?: number };
  /** incoming: where the migration stream is awaited, and whether it has arrived in full */
  incoming?: { port: number; done: boolean };
  /** consecutive failed starts (or unrequested exits) on this node */
  fails: number;
  /** the agent paused the guest because its mirror broke: it resumes once the leader outdated the replica */
  pausedForMirror?: boolean;
  /** an action on it is under way (its facts may be about to change): "start", "migrate", ... */
  busy?: string;
  error?: string;
}

/** What a node reports about its VMs (the bus's "vm" message carries this). */
export interface VmNodeFacts {
  /** the committed config epoch this node held when it began reading these facts: a fact read
   *  after a commit is a proof about what the node does under it (vm-manager.ts holds) */
  epoch: number;
  /** digest of the VM definitions this node holds (vm-schema.ts defsDigest) */
  defs: string;
  /** its qemu-storage-daemon answers */
  storage: boolean;
  /** VMs whose disks it serves (NBD exports) as their replica */
  exports: string[];
  /** per exported VM: which copy of its disks this node holds (vm-storage.ts copyId); a
   *  holder's mirror to it is rebuilt incrementally only over the copy its bitmap covers */
  copies?: Record<string, string>;
  vms: VmFacts[];
}

/** What the leader judges for the alarms (alarms/vm-rules.ts). */
export interface VmProblem {
  vm: string;
  kind: "down" | "restart-failed" | "mirror-degraded" | "no-capacity";
  /** the node it is about (its holder, or null when unplaced) */
  node: string | null;
  why: string;
}

/** What the alarm rules judge of the VMs on one node (alarms/rules-vm.ts). */
export interface VmAlarmInput {
  /** the VMs defined: each one's alarms are judged when `judge` */
  vms: string[];
  /** true on the acting leader (its problems), and on a node that hears another live leader
   *  (nothing: what it raised as a leader clears); false without a leader (held as they are) */
  judge: boolean;
  problems: VmProblem[];
}
