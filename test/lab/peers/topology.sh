#!/bin/bash
# The starting point every peer gets (the agent's data path is absent: LAB_NO_AGENT=1):
# node1 the MariaDB primary with semi-sync's master side on (AFTER_SYNC, as the lab's my.cnf
# says), node2 and node3 its GTID replicas; node1 the Redis master, node2 and node3 replicas.
# MariaDB listens on every address (bind-address=0.0.0.0, as a peer's VIP needs: MHA and
# Pacemaker move an address to the server itself; bollard's VIP goes through its portal).
set -eu
. "$(dirname "$(readlink -f "$0")")/common.sh"
p=node1 pids=()
for n in "${NODES[@]}"; do
  c=$S/$n/mysql/my.cnf
  sed -i 's/^bind-address=.*/bind-address=0.0.0.0/' "$c"
  ( set +e; svc_stop "$n" mariadb; svc_start "$n" mariadb && wait_ports "$n" 30 3306 ) & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { echo "topology: a MariaDB did not restart" >&2; exit 1; }; done
repl_pw=$(cat "$S/secrets/mysql-repl.pass")
sql "$p" "SET GLOBAL rpl_semi_sync_master_enabled=ON; SET GLOBAL read_only=OFF;"
rcli "$p" CONFIG SET min-replicas-to-write 0 >/dev/null
rcli "$p" REPLICAOF NO ONE >/dev/null
for n in "${NODES[@]}"; do
  [ "$n" = "$p" ] && continue
  sql "$n" "CHANGE MASTER TO MASTER_HOST='$(data_ip "$p")', MASTER_USER='repl', MASTER_PASSWORD='$repl_pw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;"
  rcli "$n" CONFIG SET min-replicas-to-write 0 >/dev/null
  rcli "$n" REPLICAOF "$(data_ip "$p")" 6379 >/dev/null
done
# until both replicas' IO threads and Redis links are up
for i in $(seq 1 100); do
  ok=1
  for n in "${NODES[@]}"; do
    [ "$n" = "$p" ] && continue
    [ "$(sql "$n" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='SLAVE_RUNNING'")" = ON ] || ok=0
    rcli "$n" INFO replication | grep -q 'master_link_status:up' || ok=0
  done
  [ $ok = 1 ] && { echo "topology: $p primary, replicas attached"; exit 0; }
  sleep 0.1
done
echo "topology: replicas did not attach to $p" >&2; exit 1
