# shellcheck shell=bash
# Shared by the peers' setup scripts (make bench-peers, test/lab/bench-peers.ts): where each
# peer's files live and how its daemons start and stop. Every daemon runs inside a node's
# namespace, detached, and is stopped by the pid it was started with (never by name).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
P=$S/peers
peer_dir() { mkdir -p "$P/$1" && echo "$P/$1"; }   # NODE (or "client")
# daemon_start NS NAME CMD...: CMD detached in NS, pid in $P/NS/NAME.pid, output in NAME.log
daemon_start() { local ns=$1 name=$2 d; shift 2; d=$(peer_dir "$ns"); spawn "$ns" "$d/$name.pid" "$d/$name.log" "$@"; }
# daemon_stop NS NAME: SIGTERM, SIGKILL after 3 s; nothing if it is gone (its node lost power)
daemon_stop() {
  local pid i f=$P/$1/$2.pid
  pid=$(alive_pid "$f") || { rm -f "$f"; return 0; }
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}
sql() { ip netns exec "$1" mariadb --socket="$S/$1/mysql/mysqld.sock" -u root -N -e "$2"; }   # NODE SQL
rcli() { ip netns exec "$1" redis-cli -h "$(data_ip "$1")" "${@:2}"; }                          # NODE ARGS...
VIP=$VIP_RESERVED
