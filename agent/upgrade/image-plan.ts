// The A/B image upgrade's decisions, pure (issue 15 item 2, docs/upgrade.md "Image upgrade"):
// which root slot is running and which is free, the boot-counted loader entry of the new one,
// and what to do at boot once the health gate has spoken; whether an image file is a bollard
// image and what its checksums say. The I/O around it is in image.ts (writing the inactive
// root, the ESP, bootctl) and image-gate.ts (the gate at boot, the default entry).
//
// systemd's Automatic Boot Assessment (https://systemd.io/AUTOMATIC_BOOT_ASSESSMENT/): an entry
// file `ID+LEFT[-DONE].conf` is tried LEFT more times; systemd-boot renames it at each try
// (LEFT-1, DONE+1); at LEFT 0 it is "bad" and sorted last. `systemd-bless-boot good` drops
// the counter once the boot is judged good, `bad` sets LEFT to 0. `bootctl set-oneshot ID`
// (the LoaderEntryOneShot EFI variable) boots ID once, then the default again: the old root,
// unless the new entry is made the default after its blessing.
// systemd-boot 252 (Debian 12) takes the entry's id from its file name as found, counter
// included ("bollard-b+3.conf"; later versions drop the counter), and matches the one-shot and
// the default as globs: so both are set as the glob `bollard-<slot>*.conf`, which names the
// slot's entry whatever its counter, and ids are compared without their counters.

export type Slot = "a" | "b";

/** The image layout's fixed PARTUUIDs of the two root slots (image/layout.conf). */
export interface Slots {
  a: string;
  b: string;
}

export const other = (s: Slot): Slot => (s === "a" ? "b" : "a");

/** image/layout.conf, as the agent needs it (a unit test holds the two together). */
export const LAYOUT = {
  sector: 512,
  parts: ["bollard-esp", "BOLLARD-SEED", "bollard-root-a", "bollard-root-b", "bollard-data"],
  espMib: 256,
  rootMib: 2560,
  typeRoot: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
  partuuid: {
    esp: "50f5d2c2-3c9f-4a88-8a61-a5856893cb48",
    a: "819b4dff-cc4a-4da8-918b-ec8421cf5ace",
    b: "5ebee527-3626-4024-a20d-0a7c10638479",
  },
};
export type Layout = typeof LAYOUT;
export const SLOTS: Slots = { a: LAYOUT.partuuid.a, b: LAYOUT.partuuid.b };

/** systemd-boot's vendor GUID for its EFI variables (LoaderEntrySelected, LoaderBootCountPath, ...). */
export const LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/** A partition of an image file, as image.ts reads it from the file's GPT. */
export interface ImagePart {
  index: number;
  name: string;
  uuid: string;
  type: string;
  firstLba: number;
  lastLba: number;
}

/**
 * Whether a file with this GPT is a bollard node image this node can take: the layout's five
 * partitions in order, root A where the build puts it and of the slots' size, and the file as
 * long as its partition table says (the backup GPT's 33 sectors after the last usable one).
 * Returns the root A and ESP partitions, or why not.
 */
export function checkImage(parts: ImagePart[], lastUsableLba: number, fileBytes: number, l: Layout = LAYOUT):
  { ok: true; root: { offset: number; bytes: number }; esp: { offset: number } } | { ok: false; error: string } {
  const names = parts.map((p) => p.name);
  if (names.join(",") !== l.parts.join(",")) {
    return { ok: false, error: `not a bollard node image: its partitions are ${names.length ? names.map((n) => JSON.stringify(n)).join(", ") : "none"}, expected ${l.parts.join(", ")}` };
  }
  const [esp, , a] = parts;
  if (a!.uuid.toLowerCase() !== l.partuuid.a || a!.type.toUpperCase() !== l.typeRoot) {
    return { ok: false, error: `not a bollard node image of this layout: its root A partition is ${a!.uuid.toLowerCase()}, expected ${l.partuuid.a}` };
  }
  const bytes = (a!.lastLba - a!.firstLba + 1) * l.sector;
  if (bytes !== l.rootMib * 2 ** 20) return { ok: false, error: `its root partition is ${bytes / 2 ** 20} MiB, this layout's root slots are ${l.rootMib} MiB` };
  const want = (lastUsableLba + 34) * l.sector;
  if (fileBytes !== want) {
    return { ok: false, error: `wrong size: the file is ${fileBytes} bytes, its partition table says ${want}${fileBytes < want ? " (truncated: an incomplete copy?)" : ""}` };
  }
  return { ok: true, root: { offset: a!.firstLba * l.sector, bytes }, esp: { offset: esp!.firstLba * l.sector } };
}

/** The names an image's checksum file (ESP `bollard/a/SHA256SUMS`, written by image/build.sh) must give. */
export const SUMS_NEEDED = ["root.part", "vmlinuz", "initrd.img"];

/** `sha256sum` lines (`HEX  NAME`) as a map; errors name the line. */
export function parseSums(text: string): { ok: true; sums: Map<string, string> } | { ok: false; error: string } {
  const sums = new Map<string, string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^([0-9a-f]{64}) [ *]([A-Za-z0-9._-]+)$/.exec(line);
    if (!m) return { ok: false, error: `SHA256SUMS line ${i + 1}: expected "SHA256  NAME", got ${JSON.stringify(line.slice(0, 80))}` };
    sums.set(m[2]!, m[1]!);
  }
  const missing = SUMS_NEEDED.filter((n) => !sums.has(n));
  if (missing.length) return { ok: false, error: `SHA256SUMS has no checksum of ${missing.join(", ")}` };
  return { ok: true, sums };
}

/** The `version` line of a loader entry (the image's own entry carries its version). */
export const entryVersion = (text: string): string | null => /^version\s+(\S+)\s*$/m.exec(text)?.[1] ?? null;

/** The `default` of loader.conf (a glob in systemd-boot; ours are plain ids). */
export const loaderDefault = (text: string): string | null => /^default\s+(\S+)\s*$/m.exec(text)?.[1] ?? null;

/** loader.conf with its default set to `id` (added when there was none). */
export function withDefault(text: string, id: string): string {
  if (/^default\s/m.test(text)) return text.replace(/^default\s.*$/m, `default ${id}`);
  return `default ${id}\n${text}`;
}

/** A UTF-16LE EFI string variable as read from efivarfs (4 bytes of attributes first). */
export function efiString(b: Buffer): string | null {
  if (b.length < 6) return null;
  const s = b.subarray(4).toString("utf16le");
  const z = s.indexOf("\0");
  return z < 0 ? s : s.slice(0, z);
}

/** What an image upgrade left in the state directory for the boot after it (image-trial.json). */
export interface ImageTrial {
  version: string;
  from: Slot;
  to: Slot;
  entryId: string;
  deadlineMs: number;
  baseline: string[];
  at: number;
  /** drained by a rollout: maintenance comes off when the gate passes */
  undrain?: boolean;
  /** the kernel's boot ID when the trial was written: until it changes, nothing has booted the new root yet */
  bootId?: string;
}

/** What became of it (image-result.json): written by the gate, or found at the next boot. */
export interface ImageResult {
  step: "trial" | "blessed" | "rolled-back";
  version: string;
  slot: Slot;
  why: string;
  at: number;
}

/**
 * At the agent's start: the outcome of the last image upgrade, from its trial, the gate's
 * result (if the gate wrote one) and the slot running now. Running the old slot after a
 * trial means the new root was given up: by its gate (the result says why) or by the loader
 * (it did not boot, or its tries ran out). Still the boot that wrote the trial (`bootId`, the
 * kernel's boot ID then and now): the reboot has not happened yet, so nothing can be judged;
 * the old root is running because it has not been left yet, not because it came back.
 */
export function trialOutcome(trial: ImageTrial | null, result: ImageResult | null, running: Slot, now: number, bootId: string | null = null): ImageResult | null {
  if (!trial) return result;
  if (result && result.at >= trial.at) return result;
  if (trial.bootId && bootId === trial.bootId) return { step: "trial", version: trial.version, slot: trial.to, why: `slot ${trial.to.toUpperCase()} written; it boots, on trial, at the next reboot`, at: trial.at };
  if (running === trial.to) return { step: "trial", version: trial.version, slot: trial.to, why: "booted, the health gate runs", at: now };
  return { step: "rolled-back", version: trial.version, slot: trial.to, why: `slot ${trial.to.toUpperCase()} was given up by the boot loader: it did not boot, or its tries ran out`, at: now };
}

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
  /** its id without the counter */
  entryId: string;
  /** the glob that names it in the loader (bootctl set-oneshot, loader.conf's default) */
  entryGlob: string;
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
  if (p.defaultId && slotOfPattern(p.defaultId) === to) return { ok: false, error: `the loader's default is ${p.defaultId}, the slot to be overwritten: set the running slot's entry as default first` };
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
  return { ok: true, plan: { from: a.slot, to, entryFile: `bollard-${to}+${p.tries}.conf`, entryId, entryGlob: entryGlob(to), entryText, espDir: `bollard/${to}`, remove } };
}

/** The glob that names a slot's entry, counter or not. */
export const entryGlob = (slot: Slot): string => `bollard-${slot}*.conf`;

/** The slot a loader default (an id or our glob) names, or null. */
export function slotOfPattern(p: string): Slot | null {
  const m = /^bollard-([ab])(?:[+*.]|$)/.exec(p.toLowerCase());
  return m ? (m[1] as Slot) : null;
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
  const sel = parseEntry(p.selectedId)?.id ?? p.selectedId; // systemd-boot 252: the id as found, counter included
  const file = p.entries.find((f) => parseEntry(f)?.id === sel);
  const e = file ? parseEntry(file) : null;
  if (!e) return { do: "nothing", why: `entry ${p.selectedId} is not on the ESP` };
  if (e.left === null) return { do: "nothing", why: `entry ${p.selectedId} is not on trial (no boot counter)` };
  if (p.gate === "pass") return { do: "bless", entryId: e.id, why: `health gate passed: ${p.why}` };
  return { do: "reject", entryId: e.id, why: `health gate failed: ${p.why}` };
}
