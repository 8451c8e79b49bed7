// The backup catalog's on-disk format, shared by every kind of backup (issue 23): MySQL base
// backups and Redis snapshots (agent/backup/) and VM disk backups (the VM backup code). One
// backup is one directory on a target:
//
//   <target>/<kind>/<id>/manifest.json      a finished backup (the directory is renamed to <id>
//                                           only once the data and the manifest are written and
//                                           checked: a half backup never looks complete)
//   <target>/<kind>/<id>.tmp/               a backup in progress, or one that died half way
//
// manifest.json = {id, kind, name, node, storedOn, startedAt, finishedAt, bytes, parent, state,
// detail}: `name` is the service or VM name, `node` the node it was taken on, `storedOn` the node
// whose target holds it, times are ISO 8601 UTC strings, `parent` the id of the backup an
// incremental one builds on (null for a full one), `state` "complete" (written and checked),
// "verified" (restored by a verification job and found good) or "bad" (a verification failed:
// never offered as good), `detail` what the kind adds (MySQL: {gtid, ...}; VM: its disks),
// `pinned` (optional) why retention must keep it (`restore --replace` pins the old data's backup).
// A manifest from disk is input from outside: parsing returns an error value, never throws.
import { readdir, readFile, rename, stat, writeFile, open } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

export const KINDS = ["mysql", "redis", "vm"] as const;
export type BackupKind = (typeof KINDS)[number];
export const STATES = ["complete", "verified", "bad"] as const;
export type BackupState = (typeof STATES)[number];

/** A backup id: sortable by time, safe as a file name: `20261206T103015Z-node2` style. */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;
const NODE_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const iso = z.string().refine((s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) && Number.isFinite(Date.parse(s)), "expected an ISO 8601 UTC time (2026-12-06T10:30:15.000Z)");

export const ManifestSchema = z.object({
  id: z.string().regex(ID_RE, "expected an id of letters, digits, '.', '_', '-' (at most 80)"),
  kind: z.enum(KINDS),
  name: z.string().min(1).max(120),
  node: z.string().regex(NODE_RE, "expected a node name"),
  storedOn: z.string().regex(NODE_RE, "expected a node name"),
  startedAt: iso,
  finishedAt: iso,
  bytes: z.number().int().nonnegative(),
  parent: z.string().regex(ID_RE).nullable(),
  state: z.enum(STATES),
  detail: z.record(z.string(), z.unknown()),
  /** kept whatever retention says, with why (the old data `restore --replace` kept); removed by `bollard backup unpin ID` */
  pinned: z.string().min(1).max(300).optional(),
}).strict();

export type Manifest = z.infer<typeof ManifestSchema>;
export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export const MANIFEST = "manifest.json";
export const TMP_SUFFIX = ".tmp";

/** Parses manifest.json's text; the error names the field and what it expected. */
export function parseManifest(text: string): Result<Manifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `manifest: not JSON (${(e as Error).message.slice(0, 120)})` };
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) return { ok: false, error: `manifest: ${r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}` };
  if (Date.parse(r.data.finishedAt) < Date.parse(r.data.startedAt)) return { ok: false, error: "manifest: finishedAt is before startedAt" };
  return { ok: true, value: r.data };
}

/** A backup as found on a target. */
export interface Listed {
  manifest: Manifest;
  /** the backup's directory */
  dir: string;
}
export interface Listing {
  /** oldest first (by startedAt, then id) */
  backups: Listed[];
  /** directories that are not a readable backup, with why (counted, shown, never offered) */
  errors: { dir: string; error: string }[];
  /** `<id>.tmp` directories: in progress, or left by a backup that died */
  inProgress: { kind: BackupKind; id: string; dir: string }[];
}

/** Every backup under `targetDir` (all kinds, including "vm" written by the VM backup code). A
 *  missing target is an empty listing; a directory whose name and manifest disagree is an error. */
export async function listBackups(targetDir: string): Promise<Listing> {
  const out: Listing = { backups: [], errors: [], inProgress: [] };
  for (const kind of KINDS) {
    let names: string[];
    try {
      names = await readdir(join(targetDir, kind));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      out.errors.push({ dir: join(targetDir, kind), error: (e as Error).message });
      continue;
    }
    for (const n of names.sort()) {
      const dir = join(targetDir, kind, n);
      if (n.endsWith(TMP_SUFFIX)) {
        out.inProgress.push({ kind, id: n.slice(0, -TMP_SUFFIX.length), dir });
        continue;
      }
      let text: string;
      try {
        if (!(await stat(dir)).isDirectory()) continue;
        text = await readFile(join(dir, MANIFEST), "utf8");
      } catch (e) {
        out.errors.push({ dir, error: `no readable ${MANIFEST}: ${(e as Error).message}` });
        continue;
      }
      const m = parseManifest(text);
      if (!m.ok) out.errors.push({ dir, error: m.error });
      else if (m.value.id !== n || m.value.kind !== kind) out.errors.push({ dir, error: `manifest says ${m.value.kind}/${m.value.id}, directory is ${kind}/${n}` });
      else out.backups.push({ manifest: m.value, dir });
    }
  }
  out.backups.sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt) || a.manifest.id.localeCompare(b.manifest.id));
  return out;
}

/** Good to restore from: written and checked, and not found bad by a verification. */
export const isGood = (m: Manifest): boolean => m.state === "complete" || m.state === "verified";

/** The directory a backup in progress is written to. */
export const tmpDir = (targetDir: string, kind: BackupKind, id: string): string => join(targetDir, kind, id + TMP_SUFFIX);

/** Writes manifest.json into `dir` durably (temp file, fsync, rename). */
export async function writeManifest(dir: string, m: Manifest): Promise<void> {
  const checked = ManifestSchema.parse(m);
  const tmp = join(dir, MANIFEST + ".new");
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(JSON.stringify(checked, null, 2) + "\n");
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, MANIFEST));
}

/** The last step of a backup: `<id>.tmp` becomes `<id>` once its manifest is there and parses. */
export async function finalize(targetDir: string, kind: BackupKind, id: string): Promise<string> {
  const from = tmpDir(targetDir, kind, id);
  const m = parseManifest(await readFile(join(from, MANIFEST), "utf8"));
  if (!m.ok) throw new Error(`${from}: ${m.error}`);
  if (m.value.id !== id || m.value.kind !== kind) throw new Error(`${from}: manifest is for ${m.value.kind}/${m.value.id}`);
  const to = join(targetDir, kind, id);
  await rename(from, to);
  const d = await open(join(targetDir, kind), "r");
  try { await d.sync(); } finally { await d.close(); }
  return to;
}

/** Changes a finished backup's state (a verification's verdict), keeping the rest. */
export async function setState(dir: string, state: BackupState, detail: Record<string, unknown> = {}): Promise<Manifest> {
  const m = parseManifest(await readFile(join(dir, MANIFEST), "utf8"));
  if (!m.ok) throw new Error(`${dir}: ${m.error}`);
  const next = { ...m.value, state, detail: { ...m.value.detail, ...detail } };
  await writeManifest(dir, next);
  return next;
}

/** Pins a finished backup (retention keeps it, whatever its age) with why, or unpins it (null). */
export async function setPinned(dir: string, why: string | null): Promise<Manifest> {
  const m = parseManifest(await readFile(join(dir, MANIFEST), "utf8"));
  if (!m.ok) throw new Error(`${dir}: ${m.error}`);
  const { pinned: _old, ...rest } = m.value;
  const next: Manifest = why ? { ...rest, pinned: why.slice(0, 300) } : rest;
  await writeManifest(dir, next);
  return next;
}

/** A new id from a wall time and the node: `20261206T103015123Z-node2`. */
export function newId(wallMs: number, node: string): string {
  return new Date(wallMs).toISOString().replace(/[-:]/g, "").replace(".", "") + "-" + node;
}

/** Writes a whole file with fsync (data files of a backup). */
export async function writeDurable(path: string, data: string | Buffer): Promise<void> {
  await writeFile(path, data, { mode: 0o600, flush: true });
}
