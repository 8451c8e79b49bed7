// Active health checks for the portal's HTTP backends (issue 4 item 3: OSS nginx has none).
//
// - HealthTable is the pure core: it steps each backend's state on probe results, with
//   HAProxy-style rise/fall counts, and returns the transitions. No clock, no I/O.
// - HealthChecker schedules the probes on injected timers and clock, one probe in flight per
//   backend at most, and reports each transition; the probe itself is injected too.
// - httpProbe is the real probe: GET <path> over node:http, 2xx/3xx is a pass.
//
// States: a backend starts "unknown" (kept in its upstream); its first result decides
// (one pass: up, one failure: down); after that `fall` consecutive failures take it down
// and `rise` consecutive passes bring it back.
import { request } from "node:http";
import type { Logger, Timers, TimerHandle } from "../env/env.ts";
import type { HealthSpec, HttpService } from "./portal-render.ts";

export type HealthState = "unknown" | "up" | "down";

export interface ProbeResult {
  ok: boolean;
  /** "200", "503", "timeout after 200 ms", "ECONNREFUSED" */
  detail: string;
  ms: number;
}

export interface HealthTransition {
  service: string;
  backend: string;
  from: HealthState;
  to: HealthState;
  /** the consecutive results that made it: passes when going up, failures when going down */
  after: number;
  /** detail of the result that tipped it */
  detail: string;
  at: number;
}

export interface BackendHealth {
  service: string;
  backend: string;
  state: HealthState;
  /** consecutive passes (>0) or failures (<0) so far */
  run: number;
  /** when the state last changed, or null when it never did */
  since: number | null;
  lastDetail: string | null;
  lastAt: number | null;
}

/** States of every backend of every service; pure. */
export class HealthTable {
  private readonly rows = new Map<string, BackendHealth & { rise: number; fall: number }>();

  constructor(services: readonly HttpService[]) {
    for (const s of services)
      for (const b of s.backends)
        this.rows.set(key(s.name, b), {
          service: s.name, backend: b, state: "unknown", run: 0, since: null, lastDetail: null, lastAt: null,
          rise: s.health.rise, fall: s.health.fall,
        });
  }

  /** Records one probe result; returns the transition it caused, if any. */
  record(service: string, backend: string, ok: boolean, detail: string, at: number): HealthTransition | null {
    const r = this.rows.get(key(service, backend));
    if (!r) throw new Error(`health: no backend ${backend} in service "${service}"`);
    r.run = ok ? Math.max(r.run, 0) + 1 : Math.min(r.run, 0) - 1;
    r.lastDetail = detail;
    r.lastAt = at;
    const to = nextState(r.state, r.run, r.rise, r.fall);
    if (to === r.state) return null;
    const t: HealthTransition = { service, backend, from: r.state, to, after: Math.abs(r.run), detail, at };
    r.state = to;
    r.since = at;
    return t;
  }

  state(service: string, backend: string): HealthState | undefined {
    return this.rows.get(key(service, backend))?.state;
  }

  /** The backends of `service` that belong in its upstream: up or not yet checked. */
  healthy(service: string): string[] {
    return [...this.rows.values()].filter((r) => r.service === service && r.state !== "down").map((r) => r.backend);
  }

  /** service -> healthy backends, the shape PortalDesired.healthy takes. */
  snapshot(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const r of this.rows.values()) {
      out[r.service] ??= [];
      if (r.state !== "down") out[r.service]!.push(r.backend);
    }
    return out;
  }

  list(): BackendHealth[] {
    return [...this.rows.values()].map(({ rise: _r, fall: _f, ...b }) => ({ ...b }));
  }
}

/** The one place a backend's state changes: from `state` after a run of results. */
export function nextState(state: HealthState, run: number, rise: number, fall: number): HealthState {
  if (state === "unknown") return run > 0 ? "up" : "down";
  if (state === "up" && run <= -fall) return "down";
  if (state === "down" && run >= rise) return "up";
  return state;
}

const key = (service: string, backend: string) => `${service}\u0000${backend}`;

export type Probe = (backend: string, health: HealthSpec) => Promise<ProbeResult>;

export interface HealthCheckerOptions {
  services: readonly HttpService[];
  timers: Timers;
  /** monotonic ms */
  now: () => number;
  log: Logger;
  /** default httpProbe */
  probe?: Probe;
  onTransition?: (t: HealthTransition) => void;
}

/** Probes every backend every `intervalMs`; skips a round while the last probe is in flight. */
export class HealthChecker {
  readonly table: HealthTable;
  private readonly handles: TimerHandle[] = [];
  private readonly inFlight = new Set<string>();
  private running = false;

  constructor(private readonly o: HealthCheckerOptions) {
    this.table = new HealthTable(o.services);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const s of this.o.services)
      for (const b of s.backends) {
        this.handles.push(this.o.timers.after(0, () => this.check(s, b)));
        this.handles.push(this.o.timers.every(s.health.intervalMs, () => this.check(s, b)));
      }
  }

  stop(): void {
    this.running = false;
    for (const h of this.handles.splice(0)) h.cancel();
  }

  snapshot(): Record<string, string[]> {
    return this.table.snapshot();
  }

  private check(s: HttpService, backend: string): void {
    const k = key(s.name, backend);
    if (!this.running || this.inFlight.has(k)) return;
    this.inFlight.add(k);
    const probe = this.o.probe ?? httpProbe;
    probe(backend, s.health)
      .catch((e: unknown): ProbeResult => ({ ok: false, detail: `probe failed: ${(e as Error).message}`, ms: 0 }))
      .then((r) => {
        this.inFlight.delete(k);
        if (!this.running) return;
        const t = this.table.record(s.name, backend, r.ok, r.detail, this.o.now());
        if (!t) return;
        const how = t.to === "down" ? `${t.after} failure(s)` : `${t.after} pass(es)`;
        const level = t.to === "down" ? "warn" : "info";
        this.o.log[level](`backend "${backend}" of "${s.name}" ${t.from} -> ${t.to} after ${how}`, {
          service: s.name, backend, from: t.from, to: t.to, after: t.after, detail: t.detail,
        });
        this.o.onTransition?.(t);
      });
  }
}

/** GET http://<backend><path>; a 2xx or 3xx answer within timeoutMs is a pass. */
export function httpProbe(backend: string, h: HealthSpec): Promise<ProbeResult> {
  const t0 = performance.now();
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(backend);
  if (!m) return Promise.resolve({ ok: false, detail: `not host:port: ${backend}`, ms: 0 });
  const host = m[1]!.replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      resolve({ ok, detail, ms: Math.round(performance.now() - t0) });
    };
    const req = request(
      { host, port: Number(m[2]), path: h.path, method: "GET", agent: false, headers: { connection: "close", "user-agent": "bollard-health" } },
      (res) => {
        const code = res.statusCode ?? 0;
        res.resume();
        req.destroy();
        finish(code >= 200 && code < 400, String(code));
      },
    );
    // a deadline for the whole answer, not an idle timeout: a trickling backend fails too
    const deadline = setTimeout(() => {
      finish(false, `timeout after ${h.timeoutMs} ms`);
      req.destroy();
    }, h.timeoutMs);
    req.on("error", (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    req.end();
  });
}
