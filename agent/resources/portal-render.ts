// The access portal's nginx configuration, rendered from a typed desired state (DESIGN §1,
// §5; issue 4 item 3). Pure: no I/O, no clock. portal.ts writes, checks and reloads it.
//
//   <prefix>/nginx.conf            renderBase(): modules, pid, logs, worker_shutdown_timeout
//   <prefix>/stream.d/bollard.conf renderStream(): mysql_primary, redis_primary (TCP)
//   <prefix>/http.d/bollard.conf   renderHttp(): one upstream + server per configured service
//
// Decisions (docs/portal.md):
// - No write route (self-fenced, or no primary known): the stream listener stays, and its
//   upstream's only server is `127.0.0.1:1 down`. nginx then closes every new client
//   connection at once ("no live upstreams"): the client sees an immediate close, never a
//   hang, and the port layout does not change, so un-fencing is an upstream change only
//   (no listener to re-bind, which could fail at reload where `nginx -t` cannot see it).
// - An HTTP service whose backends have all failed their health checks keeps all of them
//   (fail-open, like Envoy's panic threshold or an AWS ALB): a wrong check path or a checker
//   fault must not take a service down. Connect and retry timeouts are short, so a dead
//   backend still gives a 502 within about 2 × connectTimeoutMs, not a hang.

export const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
export const STREAM_FILE = "stream.d/bollard.conf";
export const HTTP_FILE = "http.d/bollard.conf";
/** Marks the machine-readable line that status() reads back from a rendered file. */
export const STATE_MARK = "# bollard-state ";
/** An address nothing listens on, marked `down` so nginx never even tries it. */
export const REFUSE_SERVER = "127.0.0.1:1";

export interface HealthSpec {
  /** HTTP path probed with GET, e.g. "/healthz" */
  path: string;
  intervalMs: number;
  /** consecutive successes that bring a down backend up */
  rise: number;
  /** consecutive failures that take an up backend down */
  fall: number;
  timeoutMs: number;
}

/** One HTTP service of the config's portal section. */
export interface HttpService {
  name: string;
  /** nginx `listen` value: "8080", "198.18.0.100:80", "[::]:80" */
  listen: string;
  /** host:port of every backend, in order */
  backends: string[];
  health: HealthSpec;
}

export interface StreamRoute {
  /** nginx `listen` value: "3306", or "<vip>:3306" (needs net.ipv4.ip_nonlocal_bind=1 on nodes without the VIP) */
  listen: string;
  /** host:port of the current primary; null when none is known */
  primary: string | null;
}

export interface PortalDesired {
  /** self-fenced (DESIGN §5, R6): no write route, whatever `primary` says */
  fenced: boolean;
  /** upstream `mysql_primary`; omitted: no MySQL listener in this nginx */
  mysql?: StreamRoute;
  /** upstream `redis_primary`; omitted: no Redis listener in this nginx */
  redis?: StreamRoute;
  services: HttpService[];
  /** service name -> backends up now (HealthChecker.snapshot()); a service absent here uses all its backends */
  healthy: Record<string, readonly string[]>;
  /** proxy_connect_timeout for every upstream; default 1000 */
  connectTimeoutMs?: number;
  /** nginx `listen` value of the portal's own health endpoint (GET /bollard-health: 200 "ok") */
  healthListen?: string;
}

/** The path of the portal's own health endpoint. */
export const HEALTH_PATH = "/bollard-health";

export interface BaseOptions {
  /** where the pid, the logs and nginx's temp dirs go */
  prefix: string;
  pidFile: string;
  errorLog: string;
  /** directories whose *.conf are included in stream {} and http {} */
  streamDir: string;
  httpDir: string;
  streamModule?: string;
  /** default 1 */
  workerProcesses?: number | "auto";
  /** default 250: connections an old worker still holds this long after a reload are closed (a client of a demoted Redis master, which only answers READONLY, waits this long: issue 15) */
  workerShutdownTimeoutMs?: number;
  workerConnections?: number;
  /** nginx `user` for the workers (only when the master runs as root); nginx's default when omitted */
  user?: string;
}

/** What a rendered file says it routes (the STATE_MARK line). */
export interface RenderedState {
  fenced: boolean;
  mysql: string | null;
  redis: string | null;
  /** service name -> the backends in its upstream */
  services: Record<string, string[]>;
}

const HOST = String.raw`(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)`;
const HOST_PORT_RE = new RegExp(`^${HOST}:(\\d{1,5})$`);
const LISTEN_RE = new RegExp(`^(?:(?:${HOST}|\\*):)?(\\d{1,5})$`);
const NAME_RE = /^[a-z][a-z0-9_-]{0,40}$/;
const PATH_RE = /^\/[\x21-\x7e]*$/; // printable, no spaces: it goes on a request line

const portOk = (p: string | undefined) => p !== undefined && Number(p) >= 1 && Number(p) <= 65535;
export const isHostPort = (v: string): boolean => portOk(HOST_PORT_RE.exec(v)?.[1]);
export const isListen = (v: string): boolean => portOk(LISTEN_RE.exec(v)?.[1]);
const listenPort = (v: string) => Number(LISTEN_RE.exec(v)?.[1]);

/** Every problem with `d`, each naming its path; [] when it can be rendered. */
export function checkDesired(d: PortalDesired): string[] {
  const errs: string[] = [];
  const listens: [string, string][] = [];
  for (const key of ["mysql", "redis"] as const) {
    const r = d[key];
    if (!r) continue;
    if (!isListen(r.listen)) errs.push(`${key}.listen: expected "port" or "address:port", got ${JSON.stringify(r.listen)}`);
    else listens.push([`${key}.listen`, r.listen]);
    if (r.primary !== null && !isHostPort(r.primary)) errs.push(`${key}.primary: expected host:port or null, got ${JSON.stringify(r.primary)}`);
  }
  if (d.healthListen !== undefined) {
    if (!isListen(d.healthListen)) errs.push(`healthListen: expected "port" or "address:port", got ${JSON.stringify(d.healthListen)}`);
    else listens.push(["healthListen", d.healthListen]);
  }
  if (d.connectTimeoutMs !== undefined && !(Number.isInteger(d.connectTimeoutMs) && d.connectTimeoutMs > 0))
    errs.push(`connectTimeoutMs: expected a positive integer, got ${d.connectTimeoutMs}`);
  const names = new Set<string>();
  d.services.forEach((s, i) => {
    const at = `services[${i}]`;
    if (!NAME_RE.test(s.name)) errs.push(`${at}.name: expected [a-z][a-z0-9_-]*, got ${JSON.stringify(s.name)}`);
    else if (names.has(s.name)) errs.push(`${at}.name: "${s.name}" is listed twice`);
    names.add(s.name);
    if (!isListen(s.listen)) errs.push(`${at}.listen: expected "port" or "address:port", got ${JSON.stringify(s.listen)}`);
    else listens.push([`${at}.listen`, s.listen]);
    if (s.backends.length === 0) errs.push(`${at}.backends: expected at least one host:port`);
    s.backends.forEach((b, j) => {
      if (!isHostPort(b)) errs.push(`${at}.backends[${j}]: expected host:port, got ${JSON.stringify(b)}`);
    });
    errs.push(...checkHealth(s.health, `${at}.health`));
  });
  // nginx -t does not bind: two listeners on one port would fail only at reload
  for (let i = 0; i < listens.length; i++)
    for (let j = 0; j < i; j++) {
      const [pa, a] = listens[i]!;
      const [pb, b] = listens[j]!;
      const wild = (l: string) => !l.includes(":") || l.startsWith("*:");
      if (listenPort(a) === listenPort(b) && (a === b || wild(a) || wild(b))) errs.push(`${pa}: "${a}" collides with ${pb} "${b}"`);
    }
  return errs;
}

export function checkHealth(h: HealthSpec, at: string): string[] {
  const errs: string[] = [];
  if (!PATH_RE.test(h.path)) errs.push(`${at}.path: expected an absolute path without spaces, got ${JSON.stringify(h.path)}`);
  for (const k of ["intervalMs", "rise", "fall", "timeoutMs"] as const)
    if (!(Number.isInteger(h[k]) && h[k] > 0)) errs.push(`${at}.${k}: expected a positive integer, got ${h[k]}`);
  if (h.timeoutMs > h.intervalMs) errs.push(`${at}.timeoutMs: ${h.timeoutMs} is longer than intervalMs ${h.intervalMs}`);
  return errs;
}

const HEADER = (what: string) => [
  `# bollard portal: ${what}. Rendered by agent/resources/portal-render.ts and rewritten`,
  "# by the agent on every change: do not edit (docs/portal.md).",
];

/** Whether `d` routes writes to `r`'s primary. */
const routes = (d: PortalDesired, r: StreamRoute) => !d.fenced && r.primary !== null;

/** What `d` renders into the upstreams (the STATE_MARK line, and status()). */
export function renderedState(d: PortalDesired): RenderedState {
  return {
    fenced: d.fenced,
    mysql: d.mysql && routes(d, d.mysql) ? d.mysql.primary : null,
    redis: d.redis && routes(d, d.redis) ? d.redis.primary : null,
    services: Object.fromEntries(d.services.map((s) => [s.name, usedBackends(s, d.healthy[s.name]).backends])),
  };
}

function streamBlock(d: PortalDesired, name: string, r: StreamRoute, timeout: number): string[] {
  const why = d.fenced ? "self-fenced (DESIGN §5)" : "no primary known";
  const server = routes(d, r)
    ? [`    server ${r.primary} max_fails=0;`]
    : [
        `    # no write route: ${why}. The only server is down, so nginx closes each new`,
        "    # client connection at once (\"no live upstreams\") instead of letting it wait.",
        `    server ${REFUSE_SERVER} down;`,
      ];
  return [
    `upstream ${name} {`,
    ...server,
    "}",
    "server {",
    `    listen ${r.listen};`,
    `    proxy_pass ${name};`,
    `    proxy_connect_timeout ${timeout}ms;`,
    "}",
  ];
}

/** stream.d/bollard.conf: the write paths to the MySQL primary and the Redis master. */
export function renderStream(d: PortalDesired): string {
  const t = d.connectTimeoutMs ?? 1000;
  const { fenced, mysql, redis } = renderedState(d);
  const lines = [...HEADER("stream (TCP) routes to the primaries"), STATE_MARK + JSON.stringify({ fenced, mysql, redis })];
  if (d.mysql) lines.push("", ...streamBlock(d, "mysql_primary", d.mysql, t));
  if (d.redis) lines.push("", ...streamBlock(d, "redis_primary", d.redis, t));
  return lines.join("\n") + "\n";
}

/** The backends an upstream gets: the healthy ones, or all of them when none is (fail-open). */
export function usedBackends(s: HttpService, healthy: readonly string[] | undefined): { backends: string[]; failOpen: boolean } {
  if (healthy === undefined) return { backends: [...s.backends], failOpen: false };
  const up = s.backends.filter((b) => healthy.includes(b));
  return up.length ? { backends: up, failOpen: false } : { backends: [...s.backends], failOpen: true };
}

/** http.d/bollard.conf: one upstream `svc_<name>` and one server per service. */
export function renderHttp(d: PortalDesired): string {
  const t = d.connectTimeoutMs ?? 1000;
  const lines = [...HEADER("HTTP services"), STATE_MARK + JSON.stringify({ services: renderedState(d).services })];
  if (d.healthListen) {
    lines.push("", "# the agent's check of this nginx (and, on the VIP holder, of the VIP as clients see it)",
      "server {", `    listen ${d.healthListen};`, `    location = ${HEALTH_PATH} { default_type text/plain; return 200 "ok\n"; }`, "}");
  }
  if (d.services.length)
    lines.push("", "map $http_upgrade $bollard_connection {", "    default upgrade;", "    ''      close;", "}");
  for (const s of d.services) {
    const { backends, failOpen } = usedBackends(s, d.healthy[s.name]);
    const removed = s.backends.filter((b) => !backends.includes(b));
    lines.push("", `upstream svc_${s.name} {`);
    if (failOpen) lines.push("    # no backend passes its health check: all kept (fail-open, docs/portal.md)");
    for (const b of removed) lines.push(`    # ${b}: down (health check)`);
    for (const b of backends) lines.push(`    server ${b};`);
    lines.push(
      "}",
      "server {",
      `    listen ${s.listen};`,
      "    location / {",
      `        proxy_pass http://svc_${s.name};`,
      `        proxy_connect_timeout ${t}ms;`,
      "        proxy_next_upstream error timeout;",
      `        proxy_next_upstream_timeout ${2 * t}ms;`,
      "        proxy_http_version 1.1;",
      "        proxy_set_header Host $host;",
      "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
      "        proxy_set_header X-Forwarded-Proto $scheme;",
      "        proxy_set_header Upgrade $http_upgrade;",
      "        proxy_set_header Connection $bollard_connection;",
      "    }",
      "}",
    );
  }
  return lines.join("\n") + "\n";
}

/** nginx.conf: the part that does not change with the cluster's state. */
export function renderBase(o: BaseOptions): string {
  const p = o.prefix.replace(/\/+$/, "");
  return [
    ...HEADER("main configuration"),
    `load_module ${o.streamModule ?? STREAM_MODULE};`,
    ...(o.user ? [`user ${o.user};`] : []),
    `pid ${o.pidFile};`,
    `error_log ${o.errorLog} warn;`,
    `worker_processes ${o.workerProcesses ?? 1};`,
    "# after a reload, old workers close what they still hold after this long: clients of a",
    "# demoted primary are disconnected and reconnect through the new route",
    `worker_shutdown_timeout ${o.workerShutdownTimeoutMs ?? 250}ms;`,
    "",
    `events { worker_connections ${o.workerConnections ?? 4096}; }`,
    "",
    "stream {",
    `    include ${o.streamDir}/*.conf;`,
    "}",
    "",
    "http {",
    "    access_log off;",
    `    client_body_temp_path ${p}/tmp/body;`,
    `    proxy_temp_path ${p}/tmp/proxy;`,
    `    fastcgi_temp_path ${p}/tmp/fastcgi;`,
    `    uwsgi_temp_path ${p}/tmp/uwsgi;`,
    `    scgi_temp_path ${p}/tmp/scgi;`,
    `    include ${o.httpDir}/*.conf;`,
    "}",
    "",
  ].join("\n");
}

/** The STATE_MARK line of a rendered file, or null when it has none or it does not parse. */
export function parseState(text: string): Partial<RenderedState> | null {
  const line = text.split("\n").find((l) => l.startsWith(STATE_MARK));
  if (!line) return null;
  try {
    const v: unknown = JSON.parse(line.slice(STATE_MARK.length));
    return v !== null && typeof v === "object" ? (v as Partial<RenderedState>) : null;
  } catch {
    return null;
  }
}
