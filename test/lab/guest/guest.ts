// What the tests read of the lab guest (test/lab/guest/init, build.sh): the build (cached), its
// serial log (each "ack N" is a write the disk acknowledged; "found N" what a boot found), and
// its disk's counter slots (64 sectors of "C N"), so that a test compares what a guest saw
// acknowledged with what a disk holds.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";

const HERE = new URL(".", import.meta.url).pathname;

export interface Guest {
  dir: string;
  kernel: string;
  initrd: string;
}

/** Builds the guest (or finds it cached); null with why when it cannot be built here. */
export function buildGuest(): Guest | { error: string } {
  const r = spawnSync(join(HERE, "build.sh"), [], { encoding: "utf8", timeout: 600_000 });
  if (r.status !== 0) return { error: `test/lab/guest/build.sh failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join("; ")}` };
  const dir = r.stdout.trim().split("\n").pop()!;
  return { dir, kernel: join(dir, "vmlinux"), initrd: join(dir, "initrd.img") };
}

/** The kernel command line of the lab guest: quiet, serial console, no reboot; `gapUs` between writes. */
export function guestAppend(gapUs = 50_000, writes = true): string {
  return `console=ttyS0 quiet panic=-1 mitigations=off 8250.nr_uarts=1 tsc=reliable no_timer_check bollard.gap_us=${gapUs}${writes ? "" : " bollard.writes=0"}`;
}

export interface SerialView {
  /** every "ack N", in order */
  acks: number[];
  /** every "found N" (one per boot) */
  found: number[];
  text: string;
}

export function readSerial(file: string, from = 0): SerialView {
  return parseSerial(existsSync(file) ? readFileSync(file, "latin1").slice(from) : "");
}

/** The acks and founds in a serial text; an "ack" line counts once its newline is there. */
export function parseSerial(text: string): SerialView {
  const acks: number[] = [];
  const found: number[] = [];
  for (const m of text.matchAll(/(?:^|\n)ack (\d+)(?=\r?\n)/g)) acks.push(Number(m[1]));
  for (const m of text.matchAll(/bollard-guest: found (\d+)/g)) found.push(Number(m[1]));
  return { acks, found, text };
}

/** The largest counter value in a disk's 64 slots (0 when none). */
export function diskCounter(file: string): number {
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(64 * 512);
    readSync(fd, b, 0, b.length, 0);
    let max = 0;
    for (let i = 0; i < 64; i++) {
      const m = /^C (\d+)\n/.exec(b.subarray(i * 512, i * 512 + 32).toString("latin1"));
      if (m) max = Math.max(max, Number(m[1]));
    }
    return max;
  } finally {
    closeSync(fd);
  }
}

export const lastAck = (v: SerialView) => (v.acks.length ? v.acks[v.acks.length - 1]! : 0);
