// Checksums of a backup's files (SHA256SUMS in the backup's directory, sha256sum(1)'s format:
// "<hex>  <relative path>"), written when the backup is taken and checked first by a
// verification: a bit flipped on the target since is found without starting anything.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";

export const SUMS = "SHA256SUMS";

async function files(dir: string, root = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await files(p, root)));
    else if (e.isFile() && !(dir === root && (e.name === SUMS || e.name.startsWith("manifest.json")))) out.push(relative(root, p));
  }
  return out.sort();
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(path).on("data", (d) => h.update(d)).on("end", () => resolve(h.digest("hex"))).on("error", reject);
  });
}

/** Writes SHA256SUMS for every file under `dir`; returns how many. */
export async function writeSums(dir: string): Promise<number> {
  const list = await files(dir);
  const lines: string[] = [];
  for (const f of list) lines.push(`${await sha256(join(dir, f))}  ${f}`);
  await writeFile(join(dir, SUMS), lines.join("\n") + "\n", { mode: 0o600, flush: true });
  return list.length;
}

/** null when every file matches and none is missing or extra; else what is wrong. */
export async function checkSums(dir: string): Promise<string | null> {
  let text: string;
  try { text = await readFile(join(dir, SUMS), "utf8"); } catch { return `no ${SUMS}`; }
  const want = new Map<string, string>();
  for (const l of text.split("\n").filter(Boolean)) {
    const m = /^([0-9a-f]{64})  (.+)$/.exec(l);
    if (!m) return `${SUMS}: bad line "${l.slice(0, 80)}"`;
    want.set(m[2]!, m[1]!);
  }
  const have = await files(dir);
  const wrong: string[] = [];
  for (const f of have) {
    const w = want.get(f);
    if (!w) wrong.push(`${f} not listed`);
    else if (w !== (await sha256(join(dir, f)))) wrong.push(`${f} changed`);
  }
  for (const f of want.keys()) if (!have.includes(f)) wrong.push(`${f} missing`);
  return wrong.length ? `checksums: ${wrong.slice(0, 5).join(", ")}${wrong.length > 5 ? ` and ${wrong.length - 5} more` : ""}` : null;
}
