# shellcheck shell=bash
# Shared by test/lab/lab and test/lab/power: the lab's address plan, its ledger of what it
# made, and how a node's "operating system" (services + agent supervisor) starts and stops.
# Sourced, never run. Callers set -u; every function returns non-zero on failure.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)

# The state dir: /run/bollard-lab for root; a user's own dir otherwise (the loopback mode).
default_state() {
  if [ "$(id -u)" = 0 ]; then echo /run/bollard-lab
  elif [ -n "${HOME:-}" ] && [ -d "$HOME" ] && [ -w "$HOME" ]; then echo "$HOME/.bollard-lab"
  else echo "${XDG_RUNTIME_DIR:-/tmp}/bollard-lab-$(id -u)"
  fi
}
S=${LAB_STATE:-$(default_state)}
export LAB_STATE=$S   # ipmi_sim -> power, supervisor -> power: every child finds the same lab

# MODE: "netns", the whole appliance in network namespaces (root), or "loopback", three
# nodes on 127.0.77.1-3 with only their agents and brokers (no root needed; docs/lab.md).
# A lab that is up keeps the mode it was built in ($S/lab.env); otherwise LAB_MODE, else
# netns for root and loopback for anyone else.
lab_mode() {
  local m=""
  [ -f "$S/ledger" ] && [ -r "$S/lab.env" ] && m=$(sed -n 's/^MODE=//p' "$S/lab.env")
  [ -n "$m" ] || m=${LAB_MODE:-$([ "$(id -u)" = 0 ] && echo netns || echo loopback)}
  case $m in netns|namespaces) echo netns ;; loopback) echo loopback ;; *) echo "lab: LAB_MODE is netns or loopback, got '$m'" >&2; return 1 ;; esac
}
MODE=$(lab_mode) || exit 2
loopback() { [ "$MODE" = loopback ]; }
CLUSTER=lab
NODES=(node1 node2 node3)
SWITCHES=(switchA switchB)
# Creation order; down kills mgmt first so no BMC or bondd acts while nodes are torn down.
ALL_NS=(mgmt switchA switchB node1 node2 node3 client)
# The second site (issue 18, test/lab/site2.sh): the router `wan` and the remote room `site2`,
# only when LAB_SITE2=1 at up (a lab that is up says in its lab.env).
SITE2_NET=198.19.2.0/24
WAN_DATA_IP=198.18.0.1
WAN_SITE2_IP=198.19.2.1
SITE2_IP=198.19.2.10
site2_on() {
  local v=""
  [ -f "$S/ledger" ] && [ -r "$S/lab.env" ] && v=$(sed -n 's/^SITE2=//p' "$S/lab.env")
  [ "${v:-${LAB_SITE2:-0}}" = 1 ]
}
site2_on && ALL_NS+=(wan site2)

DATA_NET=198.18.0.0/24
MGMT_NET=198.18.1.0/24
CLIENT_IP=198.18.0.100
MGMT_HOST_IP=198.18.1.1   # the "operator station" address on the mgmt bridge
VIP_RESERVED=198.18.0.10  # not configured by the lab: reserved for the agent's VIP
WATCHDOG_SEC=${LAB_WATCHDOG_SEC:-3}
BMC_CIPHER=3              # ipmi_sim needs -C 3 (LAB-NOTES); real BMCs often want 17
SNMP_PORT=161

n_of()      { echo "${1#node}"; }
LOOPBACK_NET=127.0.77       # loopback mode: node N is 127.0.77.N (all of 127/8 is local)
data_ip()   { if loopback; then echo "$LOOPBACK_NET.$(n_of "$1")"; else echo "198.18.0.1$(n_of "$1")"; fi; }
mgmt_ip()   { echo "198.18.1.1$(n_of "$1")"; }
bmc_ip()    { echo "198.18.1.2$(n_of "$1")"; }
sw_ip()     { case $1 in switchA) echo 198.18.1.31 ;; switchB) echo 198.18.1.32 ;; esac; }
sw_letter() { case $1 in switchA) echo a ;; switchB) echo b ;; esac; }
# The switch port a host's NIC is cabled to (same port number on both switches).
port_of()   { case $1 in node[1-3]) echo "swp$(n_of "$1")" ;; client) echo swp9 ;; isl) echo isl ;; *) return 1 ;; esac; }
is_node()   { [[ " ${NODES[*]} " == *" $1 "* ]]; }
is_switch() { [[ " ${SWITCHES[*]} " == *" $1 "* ]]; }
node_dir()  { echo "$S/$1"; }

log()  { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
die()  { echo "lab: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# events.log: one line per fault or power action, for tests and post-mortems.
event() { mkdir -p "$S" && printf '%s %s\n' "$(date -u +%FT%T.%3NZ)" "$*" >>"$S/events.log"; }

# ---- ledger: every object the lab makes is a line in $S/ledger; down undoes them in reverse.
ledger_add() { printf '%s\n' "$*" >>"$S/ledger"; }

# Start time of a pid (field 22 of /proc/PID/stat), so a recorded pid is never confused
# with a reused one.
pid_start() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }

# record_pid FILE PID: write "PID STARTTIME" so alive_pid can tell a reused pid apart.
record_pid() { local st; st=$(pid_start "$2") || st=0; echo "$2 $st" >"$1"; }
# alive_pid FILE: prints the pid and succeeds if the recorded process is still that process.
alive_pid() {
  local pid st cur
  [ -r "$1" ] || return 1
  read -r pid st <"$1" || return 1
  cur=$(pid_start "$pid") || return 1
  [ "$cur" = "$st" ] || return 1
  echo "$pid"
}

# spawn NS PIDFILE LOG CMD...: start CMD detached (own session, no inherited stdio) inside
# namespace NS. ip netns exec and setsid both exec in place, so $! is the command's pid.
# In the loopback mode there are no namespaces: CMD runs in this one, still in its own
# session, so that kill_node can take its whole process group.
spawn() {
  local ns=$1 pidfile=$2 logf=$3; shift 3
  if loopback; then setsid "$@" </dev/null >>"$logf" 2>&1 &
  else ip netns exec "$ns" setsid "$@" </dev/null >>"$logf" 2>&1 &
  fi
  record_pid "$pidfile" $!
}

ns_pids() { ip netns pids "$1" 2>/dev/null; }

# kill_ns NS: SIGKILL every process in the namespace until none is left (setsid'd ones too).
kill_ns() {
  local ns=$1 i pids
  for i in $(seq 1 100); do
    pids=$(ns_pids "$ns")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    sleep 0.02
  done
  echo "lab: processes left in $ns: $(ns_pids "$ns" | tr '\n' ' ')" >&2
  return 1
}

# loopback_pids NODE: the processes of a loopback-mode node: the process groups the lab
# started for it (each service and the supervisor is a session leader, the agent is in the
# supervisor's group) and any process whose command line names the node's state dir.
loopback_pids() { # (bash builtins only: it reads every /proc entry)
  local n=$1 d f pid p st fields args groups=" "
  d=$(node_dir "$n")
  for f in "$d"/run/*.pid; do
    pid=$(alive_pid "$f") && groups+="$pid "
  done
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    { read -r st <"$p/stat"; } 2>/dev/null || continue
    read -r -a fields <<<"${st##*) }"          # state ppid pgrp ...
    [ "${fields[0]}" = Z ] && continue          # dead, not yet reaped
    if [[ $groups == *" ${fields[2]} "* ]]; then echo "$pid"; continue; fi
    { mapfile -d '' args <"$p/cmdline"; } 2>/dev/null || continue
    [[ "${args[*]}" == *"$d/"* ]] && echo "$pid"
  done
  return 0
}

# kill_node NODE: SIGKILL every process of the node (its namespace's, or its loopback ones).
kill_node() {
  local n=$1 i pids f pid
  loopback || { kill_ns "$n"; return; }
  for f in "$(node_dir "$n")"/run/*.pid; do   # the process groups first, at once
    pid=$(alive_pid "$f") && kill -9 -- "-$pid" 2>/dev/null
  done
  for i in $(seq 1 100); do
    pids=$(loopback_pids "$n")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    sleep 0.02
  done
  echo "lab: processes of $n left: $(loopback_pids "$n" | tr '\n' ' ')" >&2
  return 1
}
node_pids() { if loopback; then loopback_pids "$1"; else ns_pids "$1"; fi; }

# ---- lab settings decided at `up`, read back by power-on boots that run from ipmi_sim.
load_settings() { [ -r "$S/lab.env" ] && . "$S/lab.env"; : "${AGENT:=0}" "${AGENT_CMD:=}" "${BOND_MODE:=emulated}"; }

# ---- a node's links (what a power cut takes down). The loopback mode has none to cut.
node_links() { # NODE up|down
  local n=$1 st=$2 dev
  loopback && return 0
  for dev in eth0 eth1 mgmt; do ip -n "$n" link set "$dev" "$st" || return 1; done
}

power_state() { cat "$(node_dir "$1")/power" 2>/dev/null || echo 0; }

# ---- services inside a node. Each runs in the foreground under setsid; the pid file in
# $S/nodeN/run/<svc>.pid is the lab's record, the service's own pid file sits beside its data.
SERVICES=(mosquitto mariadb redis nginx)
svc_port() { case $1 in mosquitto) echo 1883 ;; mariadb) echo 3306 ;; redis) echo 6379 ;; nginx) echo 8099 ;; esac; }

svc_start() { # NODE SVC
  local n=$1 svc=$2 d; d=$(node_dir "$n")
  alive_pid "$d/run/$svc.pid" >/dev/null && return 0
  case $svc in
    mosquitto) spawn "$n" "$d/run/$svc.pid" "$d/mosquitto/stdout.log" mosquitto -c "$d/mosquitto/mosquitto.conf" ;;
    mariadb)   spawn "$n" "$d/run/$svc.pid" "$d/mysql/stdout.log" mariadbd --defaults-file="$d/mysql/my.cnf" ;;
    redis)     spawn "$n" "$d/run/$svc.pid" "$d/redis/stdout.log" redis-server "$d/redis/redis.conf" ;;
    nginx)     spawn "$n" "$d/run/$svc.pid" "$d/nginx/stdout.log" nginx -p "$d/nginx" -c "$d/nginx/nginx.conf" -e "$d/nginx/error.log" -g "daemon off;" ;;
    *) return 1 ;;
  esac
}

svc_stop() { # NODE SVC: SIGTERM, then SIGKILL after 3 s
  local n=$1 svc=$2 pid i d; d=$(node_dir "$n")
  pid=$(alive_pid "$d/run/$svc.pid") || return 0
  kill "$pid" 2>/dev/null
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$d/run/$svc.pid"
}

# wait_ports NODE TIMEOUT_S PORT...: wait until each port accepts a TCP connection on the
# node's data address, from inside the node.
wait_ports() {
  local n=$1 t=$2 in=(ip netns exec "$1"); shift 2
  loopback && in=()
  "${in[@]}" bash -c '
    ip=$1; t=$2; shift 2; end=$((SECONDS + t))
    for p in "$@"; do
      until (exec 3<>"/dev/tcp/$ip/$p") 2>/dev/null; do
        [ $SECONDS -ge $end ] && { echo "port $p on $ip not answering after ${t}s" >&2; exit 1; }
        sleep 0.05
      done
    done' _ "$(data_ip "$n")" "$t" "$@"
}

agent_start() { # NODE: the agent under the supervisor (systemd's part), if the lab has one
  local n=$1 d env=(); d=$(node_dir "$n")
  load_settings
  [ "$AGENT" = 1 ] || return 0
  alive_pid "$d/run/supervisor.pid" >/dev/null && return 0
  # Loopback: the supervisor's watchdog reset runs "ip netns exec mgmt POWER ..."; $S/bin/ip
  # runs POWER directly there (there is no mgmt namespace), and every other ip call is ip's.
  loopback && env=(env "PATH=$S/bin:$PATH")
  # shellcheck disable=SC2086 # AGENT_CMD is a command line, split on purpose; @NODE@ in it is
  # the node's name (a per-node bundle directory: test/lab/upgrade.test.ts)
  spawn "$n" "$d/run/supervisor.pid" "$d/supervisor.log" "${env[@]}" \
    /usr/bin/python3 "$LAB_DIR/supervisor" --node "$n" --dir "$d" --repo "$REPO" \
      --watchdog-sec "$WATCHDOG_SEC" --power "$LAB_DIR/power" -- ${AGENT_CMD//@NODE@/$n} agent --config "$d/bollard.yaml"
}

# The services a node runs: all four in namespaces, only the broker in the loopback mode.
node_services() { if loopback; then echo mosquitto; else echo "${SERVICES[@]}"; fi; }

# node_boot NODE [noagent]: what the node's OS does after power on.
node_boot() {
  local n=$1 agent=${2:-agent} svc ports=()
  loopback || ip -n "$n" link set lo up
  node_links "$n" up
  for svc in $(node_services); do svc_start "$n" "$svc"; ports+=("$(svc_port "$svc")"); done
  # Like systemd's After=: the agent starts once its local services answer.
  wait_ports "$n" 30 "${ports[@]}" || return 1
  if site2_on; then ip -n "$n" route replace "$SITE2_NET" via "$WAN_DATA_IP" || return 1; fi
  [ "$agent" = noagent ] || agent_start "$n"
}

# node_power_off NODE: what a power cut does: every process gone at once, links dark.
node_power_off() {
  local n=$1 d; d=$(node_dir "$n")
  echo 0 >"$d/power"
  kill_node "$n"
  node_links "$n" down
  rm -f "$d"/run/*.pid
}
