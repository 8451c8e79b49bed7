// portal-render.ts: the nginx text the portal runs on (issue 4 item 3). The broker test
// (test/broker/portal.test.ts) runs the same text in a real nginx.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  REFUSE_SERVER, checkDesired, parseState, renderBase, renderHttp, renderStream, renderedState, usedBackends,
  type HttpService, type PortalDesired,
} from "../../agent/resources/portal-render.ts";

const health = { path: "/healthz", intervalMs: 1000, rise: 2, fall: 3, timeoutMs: 500 };
const api: HttpService = { name: "fms-api", listen: "8080", backends: ["198.18.0.21:30080", "198.18.0.22:30080", "198.18.0.23:30080"], health };

const desired = (over: Partial<PortalDesired> = {}): PortalDesired => ({
  fenced: false,
  mysql: { listen: "3306", primary: "198.18.0.12:3306" },
  redis: { listen: "6379", primary: "198.18.0.11:6379" },
  services: [api],
  healthy: {},
  ...over,
});

const Stream = suite("renderStream");

Stream("routes each upstream to its primary, one server, short connect timeout", () => {
  assert.fixture(
    renderStream(desired()),
    [
      "# bollard portal: stream (TCP) routes to the primaries. Rendered by agent/resources/portal-render.ts and rewritten",
      "# by the agent on every change: do not edit (docs/portal.md).",
      '# bollard-state {"fenced":false,"mysql":"198.18.0.12:3306","redis":"198.18.0.11:6379"}',
      "",
      "upstream mysql_primary {",
      "    server 198.18.0.12:3306 max_fails=0;",
      "}",
      "server {",
      "    listen 3306;",
      "    proxy_pass mysql_primary;",
      "    proxy_connect_timeout 1000ms;",
      "}",
      "",
      "upstream redis_primary {",
      "    server 198.18.0.11:6379 max_fails=0;",
      "}",
      "server {",
      "    listen 6379;",
      "    proxy_pass redis_primary;",
      "    proxy_connect_timeout 1000ms;",
      "}",
      "",
    ].join("\n"),
  );
});

Stream("self-fenced: both listeners stay, their only server is down, whatever the primaries", () => {
  const text = renderStream(desired({ fenced: true, connectTimeoutMs: 300 }));
  assert.not.match(text, "198.18.0.12");
  assert.not.match(text, "198.18.0.11");
  assert.is(text.split(`server ${REFUSE_SERVER} down;`).length - 1, 2);
  assert.match(text, "no write route: self-fenced");
  assert.match(text, "listen 3306;");
  assert.match(text, "listen 6379;");
  assert.match(text, "proxy_connect_timeout 300ms;");
  assert.equal(renderedState(desired({ fenced: true })).mysql, null);
});

Stream("no primary known: that upstream refuses, the other still routes", () => {
  const d = desired({ mysql: { listen: "198.18.0.100:3306", primary: null } });
  const text = renderStream(d);
  assert.match(text, "no write route: no primary known");
  assert.match(text, "listen 198.18.0.100:3306;");
  assert.match(text, "server 198.18.0.11:6379 max_fails=0;");
  assert.equal(parseState(text), { fenced: false, mysql: null, redis: "198.18.0.11:6379" });
  assert.equal(renderedState(d).services, { "fms-api": api.backends });
});

Stream("an omitted route has no listener", () => {
  const text = renderStream(desired({ redis: undefined }));
  assert.match(text, "upstream mysql_primary");
  assert.not.match(text, "redis_primary");
});

const Http = suite("renderHttp");

Http("no health results yet: every backend; proxy settings bounded", () => {
  const text = renderHttp(desired());
  for (const b of api.backends) assert.match(text, `    server ${b};\n`);
  assert.match(text, "upstream svc_fms-api {");
  assert.match(text, "listen 8080;");
  assert.match(text, "proxy_pass http://svc_fms-api;");
  assert.match(text, "proxy_connect_timeout 1000ms;");
  assert.match(text, "proxy_next_upstream_timeout 2000ms;");
  assert.match(text, "map $http_upgrade $bollard_connection");
});

Http("only the healthy backends; the others named in a comment", () => {
  const text = renderHttp(desired({ healthy: { "fms-api": ["198.18.0.23:30080", "198.18.0.21:30080", "198.18.0.99:1"] } }));
  assert.match(text, "    # 198.18.0.22:30080: down (health check)\n");
  assert.not.match(text, "server 198.18.0.22:30080;");
  assert.not.match(text, "198.18.0.99"); // not a configured backend: ignored
  // config order, not health-report order
  assert.ok(text.indexOf("server 198.18.0.21:30080;") < text.indexOf("server 198.18.0.23:30080;"));
  assert.equal(parseState(text), { services: { "fms-api": ["198.18.0.21:30080", "198.18.0.23:30080"] } });
});

Http("none healthy: fail-open with all backends, and it says so", () => {
  const text = renderHttp(desired({ healthy: { "fms-api": [] } }));
  assert.match(text, "no backend passes its health check: all kept (fail-open");
  for (const b of api.backends) assert.match(text, `    server ${b};\n`);
  assert.equal(usedBackends(api, []), { backends: api.backends, failOpen: true });
});

Http("fencing does not touch the HTTP services", () => {
  assert.is(renderHttp(desired({ fenced: true })), renderHttp(desired()));
});

Http("no services: a valid empty include", () => {
  const text = renderHttp(desired({ services: [] }));
  assert.not.match(text, "upstream");
  assert.not.match(text, "map ");
});

const Base = suite("renderBase");

Base("stream module, pid, logs, includes, worker_shutdown_timeout", () => {
  const text = renderBase({ prefix: "/run/p/", pidFile: "/run/p/nginx.pid", errorLog: "/run/p/error.log", streamDir: "/run/p/stream.d", httpDir: "/run/p/http.d" });
  for (const line of [
    "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
    "pid /run/p/nginx.pid;",
    "error_log /run/p/error.log warn;",
    "worker_shutdown_timeout 250ms;",
    "    include /run/p/stream.d/*.conf;",
    "    include /run/p/http.d/*.conf;",
    "    proxy_temp_path /run/p/tmp/proxy;",
  ])
    assert.ok(text.split("\n").includes(line), `missing line: ${line}`);
  assert.ok(text.indexOf("load_module") < text.indexOf("events"), "load_module must come first");
  assert.not.match(text, "user ");
  assert.not.match(text, "daemon");
});

Base("options", () => {
  const text = renderBase({
    prefix: "/p", pidFile: "/p/x.pid", errorLog: "/p/e.log", streamDir: "/p/s", httpDir: "/p/h",
    workerProcesses: "auto", workerShutdownTimeoutMs: 1500, user: "www-data", streamModule: "/m/stream.so", workerConnections: 64,
  });
  for (const s of ["worker_processes auto;", "worker_shutdown_timeout 1500ms;", "user www-data;", "load_module /m/stream.so;", "worker_connections 64;"])
    assert.match(text, s);
});

const Check = suite("checkDesired");

Check("a good state has no errors", () => {
  assert.equal(checkDesired(desired()), []);
  assert.equal(checkDesired(desired({ mysql: { listen: "[::]:3306", primary: "[fd00::1]:3306" }, redis: undefined })), []);
});

Check("each bad value is named by its path", () => {
  const errs = checkDesired(
    desired({
      mysql: { listen: "3306; include /etc/shadow", primary: "198.18.0.12:3306;" },
      redis: { listen: "70000", primary: "db" },
      connectTimeoutMs: 0,
      services: [
        { ...api, name: "Bad Name", backends: [] },
        { ...api, listen: "9090", backends: ["a b:1"], health: { path: "no-slash", intervalMs: 100, rise: 0, fall: 1, timeoutMs: 200 } },
      ],
    }),
  );
  for (const want of [
    'mysql.listen: expected "port" or "address:port", got "3306; include /etc/shadow"',
    'mysql.primary: expected host:port or null, got "198.18.0.12:3306;"',
    'redis.listen: expected "port" or "address:port", got "70000"',
    'redis.primary: expected host:port or null, got "db"',
    "connectTimeoutMs: expected a positive integer, got 0",
    'services[0].name: expected [a-z][a-z0-9_-]*, got "Bad Name"',
    "services[0].backends: expected at least one host:port",
    'services[1].backends[0]: expected host:port, got "a b:1"',
    'services[1].health.path: expected an absolute path without spaces, got "no-slash"',
    "services[1].health.rise: expected a positive integer, got 0",
    "services[1].health.timeoutMs: 200 is longer than intervalMs 100",
  ])
    assert.ok(errs.includes(want), `missing: ${want}\ngot:\n${errs.join("\n")}`);
});

Check("listeners that would collide at bind time (nginx -t cannot see it)", () => {
  const errs = checkDesired(desired({ redis: { listen: "198.18.0.100:3306", primary: null }, services: [{ ...api, listen: "8080" }, { ...api, name: "b", listen: "8080" }] }));
  assert.ok(errs.some((e) => e.startsWith('redis.listen: "198.18.0.100:3306" collides with mysql.listen "3306"')), errs.join("\n"));
  assert.ok(errs.some((e) => e.startsWith('services[1].listen: "8080" collides with services[0].listen')), errs.join("\n"));
  // two addresses on one port do not collide
  assert.equal(checkDesired(desired({ mysql: { listen: "127.0.4.1:3306", primary: null }, redis: { listen: "127.0.4.2:3306", primary: null } })), []);
});

Check("duplicate service names", () => {
  const errs = checkDesired(desired({ services: [api, { ...api, listen: "8081" }] }));
  assert.ok(errs.includes('services[1].name: "fms-api" is listed twice'), errs.join("\n"));
});

Check("parseState: null without a state line or with garbage", () => {
  assert.is(parseState("upstream x {}\n"), null);
  assert.is(parseState("# bollard-state {nope\n"), null);
});

Stream.run();
Http.run();
Base.run();
Check.run();
