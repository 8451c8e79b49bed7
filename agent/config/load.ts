// Loading the config: read the file, parse YAML, validate against the schema, check the
// relations between keys, read the password file. The result is either the typed Config or
// every error found, each naming the path, what was expected and what was found:
//   cluster.members[2].address: expected host:port, got "node3"
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { parseDocument } from "yaml";
import { z } from "zod";
import { checkNodeTls } from "../bus/tls.ts";
import { ConfigFile, checkRelations, toConfig, type Config } from "./schema.ts";

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: string[] };

export interface LoadOptions {
  /** read bus.password_file (default true); the CLI's status needs only the paths */
  secrets?: boolean;
}

export function loadConfig(path: string, opts: LoadOptions = {}): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    return { ok: false, errors: [`${path}: cannot read the config file: ${errText(e)}`] };
  }
  return parseConfig(text, path, opts);
}

/** Validates config text; `source` names it in YAML syntax errors. Reads bus.password_file. */
export function parseConfig(text: string, source: string, opts: LoadOptions = {}): LoadResult {
  // uniqueKeys (the default) makes a repeated key an error rather than "last one wins".
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    return { ok: false, errors: doc.errors.map((e) => `${source}: YAML syntax: ${yamlError(e.message)}`) };
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, errors: [`${source}: YAML: ${errText(e)}`] };
  }
  const parsed = ConfigFile.safeParse(raw ?? undefined, { reportInput: true });
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error.issues) };
  const errors = checkRelations(parsed.data);
  if (errors.length) return { ok: false, errors };
  const f = parsed.data;
  let password = f.bus.password ?? "";
  if (f.bus.password_file !== undefined && opts.secrets !== false) {
    try {
      // A trailing newline is what editors and `echo` leave; it is not part of the secret.
      password = readFileSync(f.bus.password_file, "utf8").replace(/\r?\n$/, "");
    } catch (e) {
      return { ok: false, errors: [`bus.password_file: expected a readable file, got ${JSON.stringify(f.bus.password_file)} (${errText(e)})`] };
    }
    if (!password) return { ok: false, errors: [`bus.password_file: expected a non-empty password, got an empty file ${JSON.stringify(f.bus.password_file)}`] };
  }
  const config = toConfig(f, password);
  if (config.cluster.join && opts.secrets !== false) {
    const file = config.cluster.join.tokenFile;
    try {
      const token = readFileSync(file, "utf8").trim();
      if (token.length < 16) return { ok: false, errors: [`cluster.join.token_file: expected a token of at least 16 characters, got ${token.length} in ${JSON.stringify(file)}`] };
      config.cluster.join.token = Buffer.from(token, "utf8");
    } catch (e) {
      return { ok: false, errors: [`cluster.join.token_file: expected a readable file, got ${JSON.stringify(file)} (${errText(e)})`] };
    }
  }
  if (config.bus.tls && opts.secrets !== false) {
    const errors = readTls(config);
    if (errors.length) return { ok: false, errors };
  }
  return { ok: true, config };
}

/**
 * Reads bus.tls's three files into config.bus.tls.material and checks them as this node's bus
 * identity: the certificate issued by the CA, to this node, for its broker's address, unexpired,
 * and the key its own (bus/tls.ts checkNodeTls).
 */
function readTls(config: Config): string[] {
  const t = config.bus.tls!;
  const files = { ca: ["bus.tls.ca_file", t.caFile], cert: ["bus.tls.cert_file", t.certFile], key: ["bus.tls.key_file", t.keyFile] } as const;
  const text: Record<string, string> = {};
  for (const [k, [key, file]] of Object.entries(files)) {
    try {
      text[k] = readFileSync(file, "utf8");
    } catch (e) {
      return [`${key}: expected a readable file, got ${JSON.stringify(file)} (${errText(e)})`];
    }
  }
  const material = { ca: text.ca!, cert: text.cert!, key: text.key! };
  const c = config.cluster;
  const own = c.members.find((m) => m.name === c.node)?.address ?? c.join?.address ?? null;
  const host = own ? own.slice(0, own.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1") : null;
  const errors = checkNodeTls(material, {
    node: c.node, ip: host && isIP(host) ? host : undefined, now: Date.now(),
    names: { ca: `bus.tls.ca_file (${t.caFile})`, cert: `bus.tls.cert_file (${t.certFile})`, key: `bus.tls.key_file (${t.keyFile})` },
  });
  if (!errors.length) t.material = material;
  return errors;
}

/** A YAML parser message, its first line, a token it quotes cut short (a 5 KB scalar is not a message). */
export function yamlError(message: string): string {
  const first = message.split("\n")[0]!.replace(/:$/, "");
  return first.length > 240 ? `${first.slice(0, 200)}... (${first.length} characters)` : first;
}

/** `path: expected X, got Y` for each issue; unknown keys also list the keys allowed there. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const allowed = keysAt(ConfigFile, issue.path);
      const obj = (issue.input ?? {}) as Record<string, unknown>;
      for (const key of issue.keys) {
        const hint = closest(key, allowed);
        out.push(
          `${pathText([...issue.path, key])}: unknown key (got ${show(obj[key])}); expected one of ${allowed.join(", ")}` +
            (hint ? `; did you mean "${hint}"?` : ""),
        );
      }
      continue;
    }
    const where = pathText(issue.path) || "(top level)";
    out.push(`${where}: expected ${issue.message}, got ${show(issue.input)}`);
  }
  return out;
}

/** `cluster.members[2].address` */
export function pathText(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s;
}

/** The value as found, short: strings quoted, missing keys as "nothing". */
export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null (an empty value)";
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "object") return "a mapping";
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** The keys an object schema allows at `path` (through lists, optionals and defaults). */
function keysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.core.$ZodType | undefined = schema;
  const unwrap = (x: z.core.$ZodType): z.core.$ZodType => {
    const def = x._zod.def as { innerType?: z.core.$ZodType };
    return def.innerType ? unwrap(def.innerType) : x;
  };
  for (const p of path) {
    if (!s) return [];
    s = unwrap(s);
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.core.$ZodType>)[String(p)];
    else if (s instanceof z.ZodArray) s = s.element as z.core.$ZodType;
    else return [];
  }
  if (!s) return [];
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** The allowed key nearest to a typo (edit distance at most 2, or one a prefix of the other). */
function closest(key: string, allowed: string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const a of allowed) {
    const d = a.startsWith(key) || key.startsWith(a) ? 1 : distance(key, a);
    if (d < bestD) [best, bestD] = [a, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
