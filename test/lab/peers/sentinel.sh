#!/bin/bash
# Redis Sentinel (Debian's redis-sentinel) on each node: the layout of the Sentinel
# documentation's "Example 2: basic setup with three boxes" (a Sentinel beside each Redis,
# quorum 2), with down-after-milliseconds lowered to 1000 (the documentation's examples use
# 60000/5000; 30000 is the built-in default) so that it detects a dead master in the same
# second bollard does (timing.peer_dead_ms 1200).
#   sentinel.sh start | stop | master      (master: the address the Sentinels agree on)
set -eu
. "$(dirname "$(readlink -f "$0")")/common.sh"
case ${1:-} in
  start)
    for n in "${NODES[@]}"; do
      d=$(peer_dir "$n")
      cat >"$d/sentinel.conf" <<CONF
# $n's Sentinel (test/lab/peers/sentinel.sh). Sentinel rewrites this file as it learns.
port 26379
bind $(data_ip "$n")
protected-mode no
daemonize no
dir $d
logfile $d/sentinel.log
sentinel monitor mymaster $(data_ip node1) 6379 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
CONF
      daemon_start "$n" sentinel /usr/bin/redis-sentinel "$d/sentinel.conf"
    done
    # until every Sentinel knows the two replicas and the two other Sentinels
    for i in $(seq 1 150); do
      ok=1
      for n in "${NODES[@]}"; do
        out=$(ip netns exec "$n" redis-cli -h "$(data_ip "$n")" -p 26379 SENTINEL master mymaster 2>/dev/null | paste -sd' ') || ok=0
        [[ $out == *"num-slaves 2 "* && $out == *"num-other-sentinels 2 "* ]] || ok=0
      done
      [ $ok = 1 ] && { echo "sentinel: three Sentinels watch $(data_ip node1)"; exit 0; }
      sleep 0.2
    done
    echo "sentinel: the Sentinels did not find each other in 30 s" >&2; exit 1 ;;
  stop) for n in "${NODES[@]}"; do daemon_stop "$n" sentinel; done ;;
  master)
    for n in "${NODES[@]}"; do
      ip netns exec "$n" redis-cli -h "$(data_ip "$n")" -p 26379 SENTINEL get-master-addr-by-name mymaster 2>/dev/null | head -1 | grep . && exit 0
    done; exit 1 ;;
  *) echo "usage: sentinel.sh start|stop|master" >&2; exit 2 ;;
esac
