// Config fragments for the `alarms:` and `notify:` sections of /etc/bollard/bollard.yaml,
// in the style of config/schema.ts: the zod schema describes the YAML as written
// (snake_case, every key optional with its default), each leaf's error text says what it
// expects, and toAlarmsConfig / toNotifyConfig give the typed camelCase objects that are
// passed down. docs/alarms.md lists every key and its default.
import { z } from "zod";
import { RULES, SEVERITIES, type RuleName, type Severity } from "./types.ts";

export interface DampingConfig {
  /** the condition must hold this long before the alarm is raised */
  raiseAfterMs: number;
  /** ...and be gone this long before it is cleared (doubled per flap, up to maxClearAfterMs) */
  clearAfterMs: number;
  maxClearAfterMs: number;
  /** a re-raise within this time of a clear counts as a flap and keeps the flap count */
  flapWindowMs: number;
  /** this many flaps mark the alarm "flapping" (one update), or raise a pending one */
  flappingAfter: number;
  perRule: Partial<Record<RuleName, { raiseAfterMs?: number; clearAfterMs?: number }>>;
}

export interface RuleConfig {
  disabled: RuleName[];
  /** how long an event alarm (failover done, SEL entry) stays before it clears itself */
  eventHoldMs: number;
  /** null: the sensor's own thresholds (unc, ucr, unr) */
  temperature: { warnC: number | null; critC: number | null; hysteresisC: number };
  /** null: the sensor's own lower thresholds (lnc, lcr); 0 RPM is always "stopped" */
  fan: { minRpm: number | null; hysteresisRpm: number };
  disk: { warnRatio: number; critRatio: number; hysteresis: number };
  memory: { warnRatio: number | null };
  replication: { lagWarnS: number; lagCritS: number };
  clockSkew: { warnMs: number; critMs: number };
  /** raise port alarms for ports that lead to no node in the port map */
  ports: { unmapped: boolean };
  sel: { maxPerPoll: number };
  /** sensor names never judged (an unpopulated fan header that reads 0 RPM) */
  ignoreSensors: string[];
}

export interface AlarmsConfig {
  damping: DampingConfig;
  rules: RuleConfig;
  history: { maxBytes: number; keep: number };
}

export type Template = "generic" | "wecom" | "dingtalk";

export interface WebhookConfig {
  name: string;
  url: string;
  template: Template;
  /** the chat text for wecom/dingtalk; placeholders {severity} {SEVERITY} {state} {text}
   * {detail} {node} {id} {rule} {at} {reporter} {acked_by} */
  text: string;
  /** dingtalk "sign" security: the secret (SEC...) */
  secret: string | null;
  minSeverity: Severity;
  states: ("raised" | "updated" | "acked" | "cleared")[];
  timeoutMs: number;
  /** at least this long between two posts (WeCom and DingTalk bots take 20 a minute) */
  minIntervalMs: number;
  headers: Record<string, string>;
}

export interface RetryConfig {
  baseMs: number;
  maxDelayMs: number;
  /** 0: retry until delivered */
  maxAttempts: number;
}

export interface NotifyConfig {
  webhooks: WebhookConfig[];
  retry: RetryConfig;
  /** queued notifications per webhook; the oldest is dropped beyond this */
  queueMax: number;
}

export const DEFAULT_TEXT = "[{SEVERITY}] {text} ({state}{detail_sep}{detail}) at {at}";

const expect = (what: string) => ({ error: what });
const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) =>
  z.object(shape, expect(`a mapping (${what})`)).strict();
const msKey = (d: number) => z.number(expect("a whole number of milliseconds >= 0")).int().min(0).max(86_400_000).default(d);
const optMs = () => z.number(expect("a whole number of milliseconds >= 0")).int().min(0).max(86_400_000).optional();
const ratio = (d: number) => z.number(expect("a ratio in (0, 1]")).gt(0).max(1).default(d);
const nullableNum = (what: string) => z.number(expect(what)).nullable().default(null);

/** not-ready (N+1 readiness) is raised only when it has held this long, unless configured */
export const NOT_READY_RAISE_AFTER_MS = 15_000;

const RuleSettings = section(
  { enabled: z.boolean(expect("true or false")).default(true), raise_after_ms: optMs(), clear_after_ms: optMs() },
  "enabled, raise_after_ms, clear_after_ms",
).optional();
const RULE_SHAPE = Object.fromEntries(RULES.map((r) => [r, RuleSettings])) as { [K in RuleName]: typeof RuleSettings };

export const AlarmsSection = section(
  {
    raise_after_ms: msKey(0),
    clear_after_ms: msKey(10_000),
    max_clear_after_ms: msKey(600_000),
    flap_window_ms: msKey(600_000),
    flapping_after: z.number(expect("a whole number >= 1")).int().min(1).max(1000).default(3),
    event_hold_ms: msKey(600_000),
    rules: section(RULE_SHAPE, `settings per rule (${RULES.join(", ")})`).prefault({}),
    temperature: section(
      { warn_c: nullableNum("degrees Celsius, or null"), crit_c: nullableNum("degrees Celsius, or null"), hysteresis_c: z.number(expect("degrees Celsius >= 0")).min(0).default(2) },
      "warn_c, crit_c, hysteresis_c",
    ).prefault({}),
    fan: section({ min_rpm: nullableNum("RPM, or null"), hysteresis_rpm: z.number(expect("RPM >= 0")).min(0).default(100) }, "min_rpm, hysteresis_rpm").prefault({}),
    disk: section({ warn_ratio: ratio(0.85), crit_ratio: ratio(0.95), hysteresis: z.number(expect("a ratio in [0, 0.5]")).min(0).max(0.5).default(0.02) }, "warn_ratio, crit_ratio, hysteresis").prefault({}),
    memory: section({ warn_ratio: ratio(0.95).nullable() }, "warn_ratio").prefault({}),
    replication: section({ lag_warn_s: z.number(expect("seconds > 0")).positive().default(10), lag_crit_s: z.number(expect("seconds > 0")).positive().default(60) }, "lag_warn_s, lag_crit_s").prefault({}),
    clock_skew: section({ warn_ms: msKey(500), crit_ms: msKey(2000) }, "warn_ms, crit_ms").prefault({}),
    ports: section({ unmapped: z.boolean(expect("true or false")).default(false) }, "unmapped").prefault({}),
    sel: section({ max_per_poll: z.number(expect("a whole number >= 1")).int().min(1).max(1000).default(20) }, "max_per_poll").prefault({}),
    ignore_sensors: z.array(z.string(expect("a sensor name")).min(1), expect("a list of sensor names")).default([]),
    history: section(
      { max_bytes: z.number(expect("bytes, 4096 to 1 GiB")).int().min(4096).max(2 ** 30).default(1 << 20), keep: z.number(expect("a whole number of files, 1 to 100")).int().min(1).max(100).default(5) },
      "max_bytes, keep",
    ).prefault({}),
  },
  "alarm damping, rule thresholds, history",
);
export type AlarmsSection = z.infer<typeof AlarmsSection>;

const STATES = ["raised", "updated", "acked", "cleared"] as const;
const Webhook = section(
  {
    name: z.string(expect("a name of a-z, 0-9, - and _")).regex(/^[a-z0-9_-]{1,40}$/),
    url: z.string(expect("an http:// or https:// URL")).refine((u) => /^https?:\/\/[^\s]+$/.test(u) && URL.canParse(u)),
    template: z.enum(["generic", "wecom", "dingtalk"], expect("one of generic, wecom, dingtalk")).default("generic"),
    text: z.string(expect("a text template")).min(1).max(2000).default(DEFAULT_TEXT),
    secret: z.string(expect("the DingTalk signing secret")).min(1).nullable().default(null),
    min_severity: z.enum(SEVERITIES, expect("one of critical, major, minor, info")).default("minor"),
    states: z.array(z.enum(STATES, expect("raised, updated, acked or cleared"))).min(1).default(["raised", "cleared"]),
    timeout_ms: z.number(expect("milliseconds, 100 to 120000")).int().min(100).max(120_000).default(5000),
    min_interval_ms: msKey(0),
    headers: z.record(z.string(), z.string(), expect("a mapping of header name to value")).default({}),
  },
  "name, url, template, text, secret, min_severity, states, timeout_ms, min_interval_ms, headers",
);

export const NotifySection = section(
  {
    webhooks: z.array(Webhook, expect("a list of webhooks")).max(16).default([]),
    retry: section(
      { base_ms: msKey(1000), max_delay_ms: msKey(60_000), max_attempts: z.number(expect("a whole number >= 0 (0: forever)")).int().min(0).default(0) },
      "base_ms, max_delay_ms, max_attempts",
    ).prefault({}),
    queue_max: z.number(expect("a whole number, 1 to 1000000")).int().min(1).max(1_000_000).default(10_000),
  },
  "webhooks, retry, queue_max",
).refine((n) => new Set(n.webhooks.map((w) => w.name)).size === n.webhooks.length, { error: "expected unique webhook names", path: ["webhooks"] });
export type NotifySection = z.infer<typeof NotifySection>;

/** Relations between keys of a schema-valid section, each a finished `alarms.path: ...` line. */
export function checkAlarmsRelations(f: AlarmsSection): string[] {
  const errs: string[] = [];
  const order = (path: string, lo: number, hi: number, a: string, b: string) => {
    if (lo > hi) errs.push(`alarms.${path}: expected ${a} <= ${b}, got ${a}=${lo}, ${b}=${hi}`);
  };
  order("disk", f.disk.warn_ratio, f.disk.crit_ratio, "warn_ratio", "crit_ratio");
  order("replication", f.replication.lag_warn_s, f.replication.lag_crit_s, "lag_warn_s", "lag_crit_s");
  order("clock_skew", f.clock_skew.warn_ms, f.clock_skew.crit_ms, "warn_ms", "crit_ms");
  if (f.temperature.warn_c !== null && f.temperature.crit_c !== null) order("temperature", f.temperature.warn_c, f.temperature.crit_c, "warn_c", "crit_c");
  return errs;
}

export function toAlarmsConfig(f: AlarmsSection): AlarmsConfig {
  const perRule: DampingConfig["perRule"] = {};
  const disabled: RuleName[] = [];
  for (const [rule, s] of Object.entries(f.rules) as [RuleName, AlarmsSection["rules"][RuleName]][]) {
    if (!s) continue;
    if (!s.enabled) disabled.push(rule);
    perRule[rule] = { raiseAfterMs: s.raise_after_ms, clearAfterMs: s.clear_after_ms };
  }
  // a verdict that holds, not a replica re-pointing for a moment (docs/readiness.md)
  perRule["not-ready"] = { ...perRule["not-ready"], raiseAfterMs: perRule["not-ready"]?.raiseAfterMs ?? NOT_READY_RAISE_AFTER_MS };
  return {
    damping: {
      raiseAfterMs: f.raise_after_ms,
      clearAfterMs: f.clear_after_ms,
      maxClearAfterMs: Math.max(f.max_clear_after_ms, f.clear_after_ms),
      flapWindowMs: f.flap_window_ms,
      flappingAfter: f.flapping_after,
      perRule,
    },
    rules: {
      disabled,
      eventHoldMs: f.event_hold_ms,
      temperature: { warnC: f.temperature.warn_c, critC: f.temperature.crit_c, hysteresisC: f.temperature.hysteresis_c },
      fan: { minRpm: f.fan.min_rpm, hysteresisRpm: f.fan.hysteresis_rpm },
      disk: { warnRatio: f.disk.warn_ratio, critRatio: f.disk.crit_ratio, hysteresis: f.disk.hysteresis },
      memory: { warnRatio: f.memory.warn_ratio },
      replication: { lagWarnS: f.replication.lag_warn_s, lagCritS: f.replication.lag_crit_s },
      clockSkew: { warnMs: f.clock_skew.warn_ms, critMs: f.clock_skew.crit_ms },
      ports: { unmapped: f.ports.unmapped },
      sel: { maxPerPoll: f.sel.max_per_poll },
      ignoreSensors: [...f.ignore_sensors],
    },
    history: { maxBytes: f.history.max_bytes, keep: f.history.keep },
  };
}

export function toNotifyConfig(f: NotifySection): NotifyConfig {
  return {
    webhooks: f.webhooks.map((w) => ({
      name: w.name,
      url: w.url,
      template: w.template,
      text: w.text,
      secret: w.secret,
      minSeverity: w.min_severity,
      states: [...w.states],
      timeoutMs: w.timeout_ms,
      minIntervalMs: w.min_interval_ms,
      headers: { ...w.headers },
    })),
    retry: { baseMs: f.retry.base_ms, maxDelayMs: Math.max(f.retry.max_delay_ms, f.retry.base_ms), maxAttempts: f.retry.max_attempts },
    queueMax: f.queue_max,
  };
}

/** The defaults, as an empty `alarms:` section gives them. */
export const defaultAlarmsConfig = (): AlarmsConfig => toAlarmsConfig(AlarmsSection.parse({}));
export const defaultNotifyConfig = (): NotifyConfig => toNotifyConfig(NotifySection.parse({}));
