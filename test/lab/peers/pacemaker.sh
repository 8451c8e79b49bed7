#!/bin/bash
# Pacemaker + Corosync (Debian's pacemaker 2.1.5, corosync 3.1.7, crmsh 4.4.1, fence-agents
# 4.12, resource-agents 4.12) in the lab, as docs/ha.md "Peers" describes: the three nodes'
# stacks, stonith with one fence_ipmilan per node against the lab's ipmi_sim BMCs, the lab's
# MariaDB as a promotable ocf:heartbeat:mysql clone (node1 promoted, adopted from topology.sh
# by the first probes), IPaddr2 198.18.0.10/24 on bond0 with the Promoted instance.
# What three stacks on one machine need, each found by a failed try:
# - each node's stack in a private mount namespace (unshare -m) and UTS namespace (unshare -u,
#   hostname NODE: pacemaker names nodes by uname, and all three were "vm"), with
#   /etc/corosync, /var/lib/corosync, /var/lib/pacemaker, /var/log/pacemaker and /dev/shm
#   bind-mounted from $P/NODE, and a tmpfs on /run (corosync.pid is a fixed path: "Another
#   Corosync instance is already running"; the resource agents keep their state in
#   /run/resource-agents); the lab's state ($S, under /run) is moved back on top of it;
#   /dev/shm mode 1777, or the daemons running as hacluster fail libqb's IPC ("Invalid IPC
#   credentials");
# - the node's own MariaDB directory ($S/NODE/mysql) bind-mounted on /var/lib/mysql, so that
#   one resource definition names each node's own my.cnf, datadir, socket and pid file, as
#   on three real machines;
# - every process of a node's stack is in that mount namespace: `stop` kills them all by it
#   (pacemakerd's subdaemons and the agents' children are not all in one process group).
#   pacemaker.sh start | stop | holder | crm NODE ARGS... (a command in NODE's stack)
set -eu
. "$(dirname "$(readlink -f "$0")")/common.sh"
ring() { for n in "${NODES[@]}"; do printf '  node {\n    ring0_addr: %s\n    nodeid: %s\n    name: %s\n  }\n' "$(data_ip "$n")" "$(n_of "$n")" "$n"; done; }
# in_node NODE CMD...: CMD inside NODE's stack (its network, mount and UTS namespaces)
in_node() {
  local pid; pid=$(alive_pid "$P/$1/pacemaker.pid") || { echo "pacemaker: no stack on $1" >&2; return 1; }
  nsenter -t "$pid" -m -u -n -- "${@:2}"
}
# ns_members NODE: every process in the mount namespace NODE's stack was started in
ns_members() {
  local want p; want=$(cat "$P/$1/mntns" 2>/dev/null) || return 0
  # never this shell's own namespace nor the host's (a stale or wrong record)
  [ "$want" != "$(readlink /proc/self/ns/mnt)" ] && [ "$want" != "$(readlink /proc/1/ns/mnt)" ] || return 0
  for p in /proc/[0-9]*; do [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$want" ] && echo "${p#/proc/}"; done; return 0
}
pcmk_pass() { cat "$P/pcmk.pass"; }

# The cluster's configuration (crmsh), written to $P/pacemaker.crm. Settings and why:
# docs/ha.md "Peers".
config() {
  local n
  cat <<CRM
property cib-bootstrap-options: stonith-enabled=true stonith-action=off no-quorum-policy=stop load-threshold=1000%
CRM
  for n in "${NODES[@]}"; do cat <<CRM
primitive fence-$n stonith:fence_ipmilan params ip=$(bmc_ip "$n") ipport=623 lanplus=1 cipher=$BMC_CIPHER username=admin password="$(cat "$S/$n/bmc.pass")" pcmk_host_list=$n op monitor interval=60s
location fence-$n-away fence-$n -inf: $n
CRM
  done
  cat <<CRM
primitive db ocf:heartbeat:mysql params config=/var/lib/mysql/my.cnf datadir=/var/lib/mysql/data pid=/var/lib/mysql/mysqld.pid socket=/var/lib/mysql/mysqld.sock log=/var/lib/mysql/error.log user=root group=root replication_user=pcmk replication_passwd="$(pcmk_pass)" op monitor interval=2s role=Promoted timeout=30s op monitor interval=3s role=Unpromoted timeout=30s op start timeout=120s interval=0 op stop timeout=120s interval=0 op promote timeout=120s interval=0 op demote timeout=120s interval=0 op notify timeout=90s interval=0
clone db-clone db meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=3 clone-node-max=1 notify=true
location db-promoted-prefers-node1 db-clone rule role=Promoted 10: #uname eq node1
primitive vip ocf:heartbeat:IPaddr2 params ip=$VIP cidr_netmask=24 nic=bond0 op monitor interval=2s timeout=20s
colocation vip-with-promoted inf: vip db-clone:Promoted
order vip-after-promote Mandatory: db-clone:promote vip:start
CRM
}

case ${1:-} in
  start)
    [ -f "$P/pcmk.pass" ] || { mkdir -p "$P"; head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$P/pcmk.pass"; }
    for n in "${NODES[@]}"; do
      # the agent's user (replication_user): local admin over the socket (read_only, STOP SLAVE,
      # CHANGE MASTER) and the replicas' login to the promoted node; outside the binlog
      sql "$n" "SET sql_log_bin=0; CREATE OR REPLACE USER 'pcmk'@'localhost' IDENTIFIED BY '$(pcmk_pass)';
        GRANT ALL PRIVILEGES ON *.* TO 'pcmk'@'localhost'; CREATE OR REPLACE USER 'pcmk'@'198.18.0.%' IDENTIFIED BY '$(pcmk_pass)';
        GRANT ALL PRIVILEGES ON *.* TO 'pcmk'@'198.18.0.%'; SET sql_log_bin=1;"
      d=$(peer_dir "$n")
      rm -f "$d/mntns"
      mkdir -p "$d/coro/etc" "$d/coro/lib" "$d/coro/shm" "$d/pcmk/lib/cib" "$d/pcmk/lib/pengine" "$d/pcmk/lib/blackbox" "$d/pcmk/lib/cores" "$d/pcmk/log"
      chown -R hacluster:haclient "$d/pcmk"; chmod 1777 "$d/coro/shm"
      cat >"$d/coro/etc/corosync.conf" <<CONF
totem {
  version: 2
  cluster_name: lab
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: 1000
  token_coefficient: 0
}
nodelist {
$(ring)
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_logfile: yes
  logfile: /var/lib/corosync/corosync.log
  to_syslog: no
  timestamp: on
}
CONF
      # $S lies under /run: bind what comes from it, hold $S on /mnt, put the node's own tmpfs
      # on /run, and move $S back on top of it
      daemon_start "$n" pacemaker unshare -m --propagation private unshare -u sh -c "hostname $n &&
        mount --bind $d/coro/etc /etc/corosync && mount --bind $d/coro/lib /var/lib/corosync &&
        mount --bind $d/coro/shm /dev/shm && mount --bind $d/pcmk/lib /var/lib/pacemaker &&
        mount --bind $d/pcmk/log /var/log/pacemaker && mount --bind $S/$n/mysql /var/lib/mysql &&
        mount --rbind $S /mnt && mount -t tmpfs tmpfs /run && mkdir -p $S && mount --move /mnt $S &&
        readlink /proc/self/ns/mnt >$d/mntns && { corosync -f -c /etc/corosync/corosync.conf & echo \$! >/var/lib/corosync/corosync.pid; sleep 1; exec pacemakerd -f; }"
    done
    for n in "${NODES[@]}"; do
      for i in $(seq 1 100); do [ -s "$P/$n/mntns" ] && break; sleep 0.05; done
      [ -s "$P/$n/mntns" ] || { echo "pacemaker: $n's stack did not start (see $P/$n/pacemaker.log)" >&2; exit 1; }
    done
    formed=""
    for i in $(seq 1 300); do
      out=$(in_node node1 crm_mon -1 2>/dev/null || true)
      if [[ $out == *"partition with quorum"* && $out == *"Online: [ node1 node2 node3 ]"* ]]; then formed=$((i / 5)); break; fi
      sleep 0.2
    done
    [ -n "$formed" ] || { echo "pacemaker: the cluster did not form in 60 s (see $P/node*/pcmk/log)" >&2; exit 1; }
    echo "pacemaker: cluster formed in $formed s ($(grep -o 'Current DC: [a-z0-9]*' <<<"$out"))" >&2
    # the address a replica's CHANGE MASTER names for each node (the agent's documented
    # ${INSTANCE_ATTR_NAME}_mysql_master_IP node attribute; without it, uname -n)
    for n in "${NODES[@]}"; do in_node node1 crm_attribute --node "$n" --name db_mysql_master_IP --update "$(data_ip "$n")" --lifetime forever; done
    config >"$P/pacemaker.crm"
    in_node node1 crm configure load update "$P/pacemaker.crm" 2>&1 | grep -v 'advised\|WARNING.*timeout' >&2 || true
    # settled: node1 promoted (adopted: its first probe finds it writable), the VIP on node1,
    # the replicas unpromoted, every fence device started
    for i in $(seq 1 600); do
      x=$(in_node node1 crm_mon -1 --output-as=xml 2>/dev/null || true)
      if grep -q '<resource id="vip" [^>]*role="Started"[^>]*nodes_running_on="1"' <<<"$x" &&
         [ "$(grep -A1 '<resource id="vip" ' <<<"$x" | grep -o 'node name="node[0-9]"')" = 'node name="node1"' ] &&
         [ "$(grep -cE '<resource id="db(:[0-9]+)?" [^>]*role="Promoted"' <<<"$x")" = 1 ] &&
         [ "$(grep -cE '<resource id="db(:[0-9]+)?" [^>]*role="Unpromoted"' <<<"$x")" = 2 ] &&
         [ "$(grep -c '<resource id="fence-node[0-9]" [^>]*role="Started"' <<<"$x")" = 3 ] &&
         ! grep -q '<failure ' <<<"$x"; then
        echo "pacemaker: resources settled $((i / 5)) s after the configuration" >&2
        in_node node1 crm_mon -1 >"$P/crm_mon.start" 2>&1 || true
        exit 0
      fi
      sleep 0.2
    done
    in_node node1 crm_mon -1 >&2 || true
    echo "pacemaker: the resources did not settle in 120 s" >&2; exit 1 ;;
  stop)
    # every process of each node's stack (its mount namespace), at once, as a power cut would
    for n in "${NODES[@]}"; do
      for i in $(seq 1 100); do
        pids=$(ns_members "$n")
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        sleep 0.02
      done
      left=$(ns_members "$n")
      [ -z "$left" ] || { echo "pacemaker: processes of $n's stack left: $left" >&2; exit 1; }
      rm -f "$P/$n/pacemaker.pid" "$P/$n/coro/lib/corosync.pid" "$P/$n/mntns"
    done ;;
  # a powered-off node keeps its addresses configured (its links are down): it holds nothing
  holder) for n in "${NODES[@]}"; do [ "$(cat "$S/$n/power")" = 1 ] && ip -n "$n" -o addr show dev bond0 2>/dev/null | grep -q " $VIP/" && echo "$n"; done; true ;;
  crm) n=$2; shift 2; in_node "$n" "$@" ;;
  *) echo "usage: pacemaker.sh start|stop|holder|crm NODE CMD..." >&2; exit 2 ;;
esac
