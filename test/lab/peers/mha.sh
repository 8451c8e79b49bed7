#!/bin/bash
# MHA for MySQL (Debian's mha4mysql-manager and mha4mysql-node, 0.58) over the lab's semi-sync
# MariaDB: the manager in node3's namespace, each node an sshd of its own on its data address
# (MHA reaches the nodes only by ssh: save_binary_logs, apply_diff_relay_logs), the VIP
# 198.18.0.10 moved by master_ip_failover_script (mha-ip-failover: ssh to the new master,
# ip addr add, arping), the dead master powered off by shutdown_script (mha-power-off:
# ipmitool chassis power off against its BMC). Settings from MHA's wiki ("Parameters"):
# ping_interval 1 (default 3; the master is declared dead after 4 failed connects, so this
# is the fastest), ping_type CONNECT, candidate_master on node2, ssh_connection_timeout 1.
# Debian 12's MHA 0.58 cannot check any server: NodeUtil.pm (use warnings FATAL) formats a
# version with sprintf('%03d%03d', all its numbers), and Perl >= 5.22 dies on the redundant
# argument of "10.11.19" ("Redundant argument in sprintf at .../NodeUtil.pm line 201"; with
# MySQL 8.0.x too). So the manager and the node tools run with a copy of NodeUtil.pm on
# PERL5LIB whose two parse functions take only the numbers they format (the upstream fix),
# and of SlaveUtil.pm, which dies asking MariaDB for super_read_only (MySQL's only): read as
# off. Nothing else of the package is changed, and /usr/share/perl5 is not touched.
# relay_log_purge=0 on the replicas, as MHA's requirements ask (it may need old relay logs).
#   mha.sh start | stop | holder (the node holding the VIP)
set -eu
HERE=$(dirname "$(readlink -f "$0")")
. "$HERE/common.sh"
M=$P/mha
KEY=$M/id_ed25519
SSH_OPTS="-i $KEY -F /dev/null -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=1"
case ${1:-} in
  start)
    mkdir -p "$M" /run/sshd   # /run/sshd: sshd's privilege separation dir (openssh-server's own)
    [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -f "$KEY"
    [ -f "$M/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$M/host_key"
    cp "$KEY.pub" "$M/authorized_keys"; chmod 600 "$M/authorized_keys"
    mkdir -p "$M/perl5/MHA"
    sed -f "$HERE/mha-nodeutil.sed" /usr/share/perl5/MHA/NodeUtil.pm >"$M/perl5/MHA/NodeUtil.pm"
    sed -f "$HERE/mha-slaveutil.sed" /usr/share/perl5/MHA/SlaveUtil.pm >"$M/perl5/MHA/SlaveUtil.pm"
    export PERL5LIB=$M/perl5
    for n in "${NODES[@]}"; do
      d=$(peer_dir "$n")
      mkdir -p "$d/mha-remote"
      cat >"$d/sshd_config" <<CONF
ListenAddress $(data_ip "$n"):22
HostKey $M/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $M/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
SetEnv PERL5LIB=$M/perl5
CONF
      daemon_start "$n" sshd /usr/sbin/sshd -D -e -f "$d/sshd_config"
    done
    d=$(peer_dir node3)
    {
      cat <<CONF
[server default]
user=bollard
password=$(cat "$S/secrets/mysql-bollard.pass")
repl_user=repl
repl_password=$(cat "$S/secrets/mysql-repl.pass")
ssh_user=root
ssh_options="$SSH_OPTS"
ssh_connection_timeout=1
manager_workdir=$M/work
manager_log=$M/manager.log
ping_interval=1
ping_type=CONNECT
master_ip_failover_script=$HERE/mha-ip-failover
shutdown_script=$HERE/mha-power-off
CONF
      for n in "${NODES[@]}"; do
        echo "[server$(n_of "$n")]"
        echo "hostname=$(data_ip "$n")"
        echo "master_binlog_dir=$S/$n/mysql/data"
        echo "remote_workdir=$P/$n/mha-remote"
        [ "$n" = node3 ] || echo "candidate_master=1"
        [ "$n" = node2 ] && echo "check_repl_delay=0"
      done
    } >"$M/app1.cnf"
    mkdir -p "$M/work"
    for n in "${NODES[@]}"; do wait_ports "$n" 10 22; done
    for n in node2 node3; do sql "$n" "SET GLOBAL relay_log_purge=0"; done
    ip -n node1 addr add "$VIP/24" dev bond0
    ip netns exec node1 arping -q -U -c 1 -I bond0 "$VIP" || true
    # the manager's own checks first (ssh both ways, replication, the scripts' status)
    ip netns exec node3 masterha_check_repl --conf="$M/app1.cnf" >"$M/check_repl.log" 2>&1 ||
      { tail -25 "$M/check_repl.log" >&2; exit 1; }
    daemon_start node3 mha-manager /usr/bin/masterha_manager --conf="$M/app1.cnf" --ignore_last_failover
    for i in $(seq 1 150); do
      grep -q 'Ping(CONNECT) succeeded, waiting until MySQL' "$M/manager.log" 2>/dev/null && { echo "mha: the manager watches node1"; exit 0; }
      sleep 0.2
    done
    tail -25 "$M/manager.log" >&2; echo "mha: the manager did not start monitoring in 30 s" >&2; exit 1 ;;
  stop)
    daemon_stop node3 mha-manager
    for n in "${NODES[@]}"; do daemon_stop "$n" sshd; done ;;
  # a powered-off node keeps its addresses configured (its links are down): it holds nothing
  holder) for n in "${NODES[@]}"; do [ "$(cat "$S/$n/power")" = 1 ] && ip -n "$n" -o addr show dev bond0 2>/dev/null | grep -q " $VIP/" && echo "$n"; done; true ;;
  *) echo "usage: mha.sh start|stop|holder" >&2; exit 2 ;;
esac
