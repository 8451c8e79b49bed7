// The command lines of a VM's QEMU and of a node's qemu-storage-daemon, and where each VM's
// files live (docs/vm.md). Pure: the same definition always gives the same devices, so the QEMU
// a live migration starts on the target matches the source's (QEMU's migration needs that).
//   <vms.dir>/<vm>/<disk>.raw     the disk (on the holder; on the replica: its mirror target)
//   <vms.dir>/<vm>/qmp.sock       QMP          serial.sock / serial.log   the console and its log
//   <vms.dir>/<vm>/qemu.pid       the QEMU process (it daemonizes: it outlives an agent restart)
//   <vms.dir>/storage.qmp, storage.pid   the node's qemu-storage-daemon (NBD exports of replicas)
import { join } from "node:path";
import type { VmDef } from "../ha/vm-types.ts";

export interface VmPaths {
  dir: string;
  qmp: string;
  /** a second QMP monitor for tools beside the agent (`bollard vm backup`): QMP takes one client per socket */
  ctl: string;
  /** the guest agent's channel (virtio-serial org.qemu.guest_agent.0): answers only where the guest runs qemu-ga */
  qga: string;
  serial: string;
  serialLog: string;
  pid: string;
  disk(name: string): string;
}

export function vmPaths(vmsDir: string, vm: string): VmPaths {
  const dir = join(vmsDir, vm);
  return { dir, qmp: join(dir, "qmp.sock"), ctl: join(dir, "ctl.sock"), qga: join(dir, "qga.sock"), serial: join(dir, "serial.sock"), serialLog: join(dir, "serial.log"), pid: join(dir, "qemu.pid"), disk: (d) => join(dir, `${d}.raw`) };
}

/** QEMU node names: the file, the raw format node the device uses, the mirror's NBD target. */
export const nodeNames = (disk: string) => ({ file: `f-${disk}`, fmt: `d-${disk}`, target: `t-${disk}`, job: `mirror-${disk}`, copy: `b-${disk}`, rebuild: `rebuild-${disk}` });
/** the NBD export name of a VM's disk on its replica */
export const exportName = (vm: string, disk: string) => `${vm}.${disk}`;
/** a VM's tap device for its n-th NIC: at most 15 characters (IFNAMSIZ) */
export const tapName = (vm: string, i: number) => `bv${vm.slice(0, 10)}-${i}`.slice(0, 15);

export interface Launch {
  qemu: string;
  def: VmDef;
  paths: VmPaths;
  accel: "kvm" | "tcg";
  machine: string;
  /** -S: the guest does not run until `cont` */
  paused: boolean;
  /** -incoming defer: waits for a live migration (migrate-incoming gives the address) */
  incoming: boolean;
}

/** QEMU's argv (without the binary). The disks are raw files; the console a unix socket with a log. */
export function qemuArgs(l: Launch): string[] {
  const { def, paths } = l;
  const a = [
    "-name", `${def.name},debug-threads=off`,
    "-machine", `${l.machine},accel=${l.accel}`,
    "-m", String(def.memoryMb), "-smp", String(def.vcpus),
    "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
    "-daemonize", "-pidfile", paths.pid,
    "-qmp", `unix:${paths.qmp},server=on,wait=off`,
    "-chardev", `socket,id=ser0,path=${paths.serial},server=on,wait=off,logfile=${paths.serialLog},logappend=on`,
    "-serial", "chardev:ser0",
    "-qmp", `unix:${paths.ctl},server=on,wait=off`,
    "-chardev", `socket,id=qga0,path=${paths.qga},server=on,wait=off`,
    "-device", "virtio-serial-pci,id=vser0", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
  ];
  def.disks.forEach((d, i) => {
    const n = nodeNames(d.name);
    a.push("-blockdev", `driver=file,filename=${paths.disk(d.name)},node-name=${n.file},cache.direct=off`);
    a.push("-blockdev", `driver=raw,file=${n.file},node-name=${n.fmt}`);
    a.push("-device", `virtio-blk-pci,drive=${n.fmt},id=vd-${d.name}${!def.kernel && i === 0 ? ",bootindex=0" : ""}`);
  });
  def.nics.forEach((nic, i) => {
    a.push("-netdev", `tap,id=net${i},ifname=${tapName(def.name, i)},script=no,downscript=no`);
    a.push("-device", `virtio-net-pci,netdev=net${i},mac=${nic.mac},id=nic${i}`);
  });
  if (def.kernel) {
    a.push("-kernel", def.kernel.path);
    if (def.kernel.initrd) a.push("-initrd", def.kernel.initrd);
    a.push("-append", def.kernel.append);
  }
  if (l.paused || l.incoming) a.push("-S");
  if (l.incoming) a.push("-incoming", "defer");
  return a;
}

/** qemu-storage-daemon's argv: its QMP socket, the NBD server on the node's address, daemonized. */
export function storageArgs(o: { dir: string; address: string; port: number }): string[] {
  return [
    "--chardev", `socket,id=qmp,path=${join(o.dir, "storage.qmp")},server=on,wait=off`,
    "--monitor", "chardev=qmp",
    "--nbd-server", `addr.type=inet,addr.host=${o.address},addr.port=${o.port}`,
    "--pidfile", join(o.dir, "storage.pid"),
    "--daemonize",
  ];
}
