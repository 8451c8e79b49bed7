// Every route of the web console's API with the least role that may use it (issue 24 item 2).
// One table: the server dispatches from it, docs/web.md lists it, and a test walks it
// (test/unit/web-routes.test.ts: 401 without a session, 403 for a role below the one named).
// `role: null`: open (the login). Every POST needs the session's CSRF token as well.
import type { Role } from "./auth.ts";

export interface RouteDef {
  method: "GET" | "POST";
  path: string;
  role: Role | null;
  what: string;
}

export const ROUTES: readonly RouteDef[] = [
  { method: "POST", path: "/api/login", role: null, what: "log in: {user, password} -> the session cookie, {user, role, csrf}" },
  { method: "POST", path: "/api/logout", role: "viewer", what: "end this session" },
  { method: "GET", path: "/api/me", role: "viewer", what: "the session's user, role and CSRF token; this node and cluster" },
  { method: "GET", path: "/api/live", role: "viewer", what: "server-sent events: init, status, alarms, events, hw (?hw=1)" },
  { method: "GET", path: "/api/logs", role: "viewer", what: "?node=N&level=L&since=ISO&n=N: a node's log lines (GET /logs of the control socket)" },
  { method: "GET", path: "/api/events", role: "viewer", what: "?node=N&n=N: a node's events (GET /events)" },
  { method: "GET", path: "/api/alarms", role: "viewer", what: "?all=1: active alarms cluster-wide and the recent history (GET /alarms)" },
  { method: "GET", path: "/api/samples", role: "viewer", what: "?node=N: the last hour of a node's samples (GET /samples)" },
  { method: "GET", path: "/api/vms", role: "viewer", what: "the VMs (GET /vms), when the agent runs them" },
  { method: "POST", path: "/api/action", role: "operator", what: "{action, svc?, node?, to?}: switchover, maintenance, ha-arm, ha-disarm, ha-ack, rejoin" },
  { method: "POST", path: "/api/alarms/ack", role: "operator", what: "{id}: acknowledge an alarm (POST /alarms/ack)" },
  { method: "POST", path: "/api/vms/action", role: "operator", what: "{vm, action, node?}: start, stop, migrate a VM" },
  { method: "GET", path: "/api/vms/console", role: "operator", what: "?vm=NAME: WebSocket to the VM's serial console" },
  { method: "GET", path: "/api/audit", role: "admin", what: "the audit log of every node, and the web server's counters" },
  { method: "GET", path: "/api/users", role: "admin", what: "the accounts and their roles" },
  { method: "POST", path: "/api/users", role: "admin", what: "{op: add|passwd|role|remove, name, role?, password?}" },
];

export const routeOf = (method: string, path: string) => ROUTES.find((r) => r.method === method && r.path === path) ?? null;
