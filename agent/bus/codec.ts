// The wire codec (DESIGN §3: "payloads are versioned JSON, validated on receipt; a malformed
// one is counted, logged once per sender per minute, and dropped"). `decode` never throws:
// whatever arrives from a broker becomes either a typed Message or an error value whose text
// names the path and what was expected.
import { MAX_PAYLOAD, Message, PROTOCOL_VERSION } from "./messages.ts";

export type DecodeReason = "too-large" | "not-json" | "wrong-version" | "schema";
/** Every reason a received message is dropped: the codec's, plus the bus's topic checks. */
export type RejectReason = DecodeReason | "wrong-sender" | "bad-topic";
export const REJECT_REASONS: readonly RejectReason[] = ["too-large", "not-json", "wrong-version", "schema", "wrong-sender", "bad-topic"];

export type Decoded = { ok: true; msg: Message } | { ok: false; reason: DecodeReason; error: string };
export type DecodedJson = { ok: true; body: unknown } | { ok: false; reason: "too-large" | "not-json"; error: string };

/** Issues quoted in one error text; the rest are counted. */
const MAX_ISSUES = 3;

export function encode(msg: Message): Buffer {
  return Buffer.from(JSON.stringify(msg), "utf8");
}

/** Size and JSON checks only: for retained bodies whose schema belongs to their reader. */
export function decodeJson(payload: Buffer | string): DecodedJson {
  try {
    const size = typeof payload === "string" ? Buffer.byteLength(payload, "utf8") : payload.length;
    if (size > MAX_PAYLOAD) return { ok: false, reason: "too-large", error: `payload: expected at most ${MAX_PAYLOAD} bytes, got ${size}` };
    let text: string;
    if (typeof payload === "string") text = payload;
    else {
      // JSON text exchanged between systems is UTF-8 (RFC 8259 §8.1): refuse invalid bytes
      // rather than parse U+FFFD replacements.
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
      } catch {
        return { ok: false, reason: "not-json", error: "payload: expected UTF-8 JSON, got invalid UTF-8" };
      }
    }
    try {
      return { ok: true, body: JSON.parse(text) as unknown };
    } catch (e) {
      return { ok: false, reason: "not-json", error: `payload: expected JSON, ${(e as Error).message}` };
    }
  } catch (e) {
    return { ok: false, reason: "not-json", error: `payload: ${String(e)}` };
  }
}

/** Decodes and validates one message. Never throws, whatever `payload` holds. */
export function decode(payload: Buffer | string): Decoded {
  const j = decodeJson(payload);
  if (!j.ok) return j;
  try {
    const body = j.body;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return { ok: false, reason: "schema", error: `(root): expected an object, got ${kindOf(body)}` };
    }
    // The version is checked before the schema, so a newer peer's message is reported as
    // what it is rather than as a pile of schema issues.
    const v = (body as Record<string, unknown>).v;
    if (v !== PROTOCOL_VERSION) {
      return { ok: false, reason: "wrong-version", error: `v: expected ${PROTOCOL_VERSION}, got ${v === undefined ? "none" : show(v)}` };
    }
    const r = Message.safeParse(body);
    if (r.success) return { ok: true, msg: r.data };
    const issues = r.error.issues;
    const parts = issues.slice(0, MAX_ISSUES).map((i) => describeIssue(body, i));
    if (issues.length > MAX_ISSUES) parts.push(`and ${issues.length - MAX_ISSUES} more`);
    return { ok: false, reason: "schema", error: parts.join("; ") };
  } catch (e) {
    return { ok: false, reason: "schema", error: `(root): validation failed: ${String(e)}` };
  }
}

/** `config.members[0].bus`, or `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const k of path) out += typeof k === "number" ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out || "(root)";
}

interface Issue {
  path: readonly PropertyKey[];
  message: string;
  code?: string;
}

function describeIssue(input: unknown, issue: Issue): string {
  const path = formatPath(issue.path);
  // zod's own messages read "Invalid input: expected ...", "Too small: ...", "Unrecognized
  // key: ..."; a custom message (messages.ts's node-name regex) names only what is expected.
  const custom = (issue.code === "invalid_format" || issue.code === "custom") && !/^Invalid|expected/i.test(issue.message);
  const what = custom ? `expected ${issue.message}` : issue.message;
  const got = valueAt(input, issue.path);
  const gotText = got.found && isPrimitive(got.value) && issue.code !== "invalid_type" ? `, got ${show(got.value)}` : "";
  return `${path}: ${what}${gotText}`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): { found: boolean; value?: unknown } {
  let cur: unknown = input;
  for (const k of path) {
    if (typeof cur !== "object" || cur === null || !Object.prototype.hasOwnProperty.call(cur, k)) return { found: false };
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return { found: true, value: cur };
}

function isPrimitive(v: unknown): boolean {
  return v === null || ["string", "number", "boolean"].includes(typeof v);
}

function kindOf(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

function show(v: unknown): string {
  const s = isPrimitive(v) ? JSON.stringify(v) : kindOf(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Senders tracked by name; beyond this, rejects are counted under OTHER. */
const MAX_SENDERS = 64;
const OTHER = "(other)";

/**
 * Counts rejected messages by reason and by sender, and decides which to log: the first
 * reject from a sender, then at most one per sender per `everyMs` (DESIGN §3). The sender is
 * the broker a message came from (the only identity the ACL vouches for). Time comes from
 * the injected `now` (monotonic ms).
 */
export class DecodeStats {
  private readonly reasons = new Map<RejectReason, number>();
  private readonly senders = new Map<string, { count: number; lastLog: number | null; suppressed: number }>();
  private readonly now: () => number;
  private readonly everyMs: number;

  constructor(now: () => number, everyMs = 60_000) {
    this.now = now;
    this.everyMs = everyMs;
  }

  /** Counts one reject. `log` says whether to log it; `suppressed` rejects were not logged since the last line. */
  reject(sender: string, reason: RejectReason): { log: true; suppressed: number } | { log: false } {
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
    const key = this.senders.has(sender) || this.senders.size < MAX_SENDERS ? sender : OTHER;
    let s = this.senders.get(key);
    if (!s) this.senders.set(key, (s = { count: 0, lastLog: null, suppressed: 0 }));
    s.count++;
    const t = this.now();
    if (s.lastLog === null || t - s.lastLog >= this.everyMs) {
      const suppressed = s.suppressed;
      s.lastLog = t;
      s.suppressed = 0;
      return { log: true, suppressed };
    }
    s.suppressed++;
    return { log: false };
  }

  total(): number {
    let n = 0;
    for (const c of this.reasons.values()) n += c;
    return n;
  }

  byReason(): Record<RejectReason, number> {
    const out = {} as Record<RejectReason, number>;
    for (const r of REJECT_REASONS) out[r] = this.reasons.get(r) ?? 0;
    return out;
  }

  bySender(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, s] of this.senders) out[k] = s.count;
    return out;
  }
}
