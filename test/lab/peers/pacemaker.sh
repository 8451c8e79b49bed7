#!/bin/bash
# Pacemaker + Corosync (Debian's pacemaker 2.1.5, corosync 3.1, fence-agents 4.12,
# resource-agents' ocf:heartbeat:mysql and IPaddr2) in the lab: NOT RUN YET. What it needs,
# worked out but not finished in the session that wrote the bench (docs/ha.md "Peers"):
# - per node namespace, a private mount namespace (ip netns exec already unshares one) with
#   /etc/corosync, /var/lib/corosync, /var/lib/pacemaker, /var/log/pacemaker, /run/pacemaker
#   and /dev/shm bind-mounted from $S/peers/NODE: the three stacks share one filesystem, and
#   pacemaker's CIB and corosync's ring state live at fixed paths;
# - corosync.conf: transport knet, nodelist ring0_addr 198.18.0.11-13 (unicast on the lab's
#   addresses only), crypto none, token 1000 (the corosync.conf(5) default is 3000);
# - stonith: one fence_ipmilan per node (ip=198.18.1.2N lanplus=1 cipher=3 username=admin
#   password from $S/NODE/bmc.pass, pcmk_host_list=NODE), stonith-enabled=true;
# - ocf:heartbeat:mysql promotable (replication_user repl, binary mariadbd, datadir, socket,
#   pid from the lab's my.cnf; the lab's own mariadbd must not be started at boot for it),
#   IPaddr2 198.18.0.10/24 nic=bond0 colocated with the Promoted role.
#   pacemaker.sh start | stop | holder
set -eu
case ${1:-} in
  start) echo "pacemaker: not run in the lab yet (see test/lab/peers/pacemaker.sh and docs/ha.md, Peers)" >&2; exit 1 ;;
  stop|holder) exit 0 ;;
  *) echo "usage: pacemaker.sh start|stop|holder" >&2; exit 2 ;;
esac
