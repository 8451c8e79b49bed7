// The A/B image upgrade's decisions, pure (issue 15 item 2, docs/upgrade.md "Image upgrade"):
// which root slot is running and which is free, the boot-counted loader entry of the new one,
// and what to do at boot once the health gate has spoken. The I/O around it (writing the
// inactive root, the ESP, bootctl, systemd-bless-boot, the reboot) is not built yet.
//
// systemd's Automatic Boot Assessment (https://systemd.io/AUTOMATIC_BOOT_ASSESSMENT/): an entry
// file `ID+LEFT[-DONE].conf` is tried LEFT more times; systemd-boot renames it at each try
// (LEFT-1, DONE+1); at LEFT 0 it is "bad" and sorted last. `systemd-bless-boot good` drops
// the counter once the boot is judged good, `bad` sets LEFT to 0. `bootctl set-oneshot ID`
// (the LoaderEntryOneShot EFI variable) boots ID once, then the default again: the old root,
// unless the new entry is made the default after its blessing.

export type Slot = "a" | "b";

/** The image layout's fixed PARTUUIDs of the two root slots (image/layout.conf). */
export interface Slots {
  a: string;
  b: string;
}

export const other = (s: Slot): Slot => (s === "a" ? "b" : "a");

/** The slot whose root the running kernel was given (`root=PARTUUID=...` in /proc/cmdline), or an error. */
export function activeSlot(cmdline: string, slots: Slots): { ok: true; slot: Slot } | { ok: false; error: string } {
  const m = /(?:^|\s)root=PARTUUID=([0-9a-fA-F-]{36})(?:\s|$)/.exec(cmdline);
  if (!m) return { ok: false, error: "the kernel command line names no root=PARTUUID=: not booted from a bollard image" };
  const u = m[1]!.toLowerCase();
  if (u === slots.a.toLowerCase()) return { ok: true, slot: "a" };
  if (u === slots.b.toLowerCase()) return { ok: true, slot: "b" };
  return { ok: false, error: `root=PARTUUID=${u} is neither root slot A nor B of the image layout` };
}

/** A loader entry file name: its id (what bootctl and LoaderEntrySelected use) and its counter. */
export function parseEntry(file: string): { id: string; left: number | null; done: number | null } | null {
  const m = /^([A-Za-z0-9._-]+?)(?:\+(\d+)(?:-(\d+))?)?\.conf$/.exec(file);
  if (!m) return null;
  return { id: `${m[1]}.conf`, left: m[2] === undefined ? null : Number(m[2]), done: m[3] === undefined ? null : Number(m[3]) };
}

export interface ImagePlan {
  from: Slot;
  to: Slot;
  /** the entry file to write under loader/entries/, with its boot counter */
  entryFile: string;
  /** its id, for `bootctl set-oneshot` and `set-default` */
  entryId: string;
  entryText: string;
  /** where the new kernel and initrd go on the ESP */
  espDir: string;
  /** entry files of the target slot left from an earlier attempt: removed first */
  remove: string[];
}

/**
 * The plan to put an image into the slot not running: refused when the target slot's entry
 * is the one booted or the default (never overwrite what the loader would fall back to).
 */
export function planImage(p: {
  cmdline: string; slots: Slots; entries: string[]; defaultId: string | null; version: string; tries: number; options: string;
}): { ok: true; plan: ImagePlan } | { ok: false; error: string } {
  const a = activeSlot(p.cmdline, p.slots);
  if (!a.ok) return a;
  const to = other(a.slot);
  const entryId = `bollard-${to}.conf`;
  if (p.defaultId === entryId) return { ok: false, error: `the loader's default is ${entryId}, the slot to be overwritten: set the running slot's entry as default first` };
  if (!Number.isInteger(p.tries) || p.tries < 1 || p.tries > 9) return { ok: false, error: `tries: expected 1-9, got ${p.tries}` };
  const remove = p.entries.filter((f) => parseEntry(f)?.id === entryId);
  const options = p.options.replace(/(^|\s)root=PARTUUID=\S+/, `$1root=PARTUUID=${p.slots[to]}`);
  const entryText = [
    `title   bollard ${p.version} (slot ${to.toUpperCase()})`,
    `version ${p.version}`,
    `linux   /bollard/${to}/vmlinuz`,
    `initrd  /bollard/${to}/initrd.img`,
    `options ${options}`,
    "",
  ].join("\n");
  return { ok: true, plan: { from: a.slot, to, entryFile: `bollard-${to}+${p.tries}.conf`, entryId, entryText, espDir: `bollard/${to}`, remove } };
}

export type BootAction =
  | { do: "nothing"; why: string }
  | { do: "bless"; entryId: string; why: string }
  | { do: "reject"; entryId: string; why: string };

/**
 * At boot, after the health gate: bless the entry booted (systemd-bless-boot good, then make
 * it the default) when it is on trial (its file still carries a counter) and the gate passed;
 * reject it (systemd-bless-boot bad, then reboot: the default, the old root, comes back) when
 * the gate failed. An entry without a counter is already blessed: nothing to do.
 */
export function bootAction(p: { selectedId: string | null; entries: string[]; gate: "pass" | "fail"; why: string }): BootAction {
  if (!p.selectedId) return { do: "nothing", why: "the loader did not say which entry it booted (LoaderEntrySelected)" };
  const file = p.entries.find((f) => parseEntry(f)?.id === p.selectedId);
  const e = file ? parseEntry(file) : null;
  if (!e) return { do: "nothing", why: `entry ${p.selectedId} is not on the ESP` };
  if (e.left === null) return { do: "nothing", why: `entry ${p.selectedId} is not on trial (no boot counter)` };
  if (p.gate === "pass") return { do: "bless", entryId: e.id, why: `health gate passed: ${p.why}` };
  return { do: "reject", entryId: e.id, why: `health gate failed: ${p.why}` };
}
