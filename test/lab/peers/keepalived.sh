#!/bin/bash
# keepalived (Debian's package) for the VIP alone: one VRRP instance per node, node1 MASTER
# (priority 150), node2 and node3 BACKUP (100, 50), unicast adverts on the lab's addresses
# (unicast_peer: nothing multicast leaves the lab's bridge), the VIP 198.18.0.10 on bond0.
# A backup takes the VIP after 3 x advert_int + skew_time ((256 - priority) / 256 x
# advert_int) without an advert (keepalived.conf(5), preempt_delay; RFC 3768 / RFC 5798).
#   keepalived.sh start [ADVERT_INT [VRRP_VERSION]] | stop | holder
# ADVERT_INT defaults to 1 (VRRPv2's unit is a whole second); VRRPv3 counts centiseconds.
set -eu
. "$(dirname "$(readlink -f "$0")")/common.sh"
case ${1:-} in
  start)
    adv=${2:-1} ver=${3:-2}
    for n in "${NODES[@]}"; do
      d=$(peer_dir "$n") prio=150 state=BACKUP peers=""
      case $n in node1) state=MASTER ;; node2) prio=100 ;; node3) prio=50 ;; esac
      for m in "${NODES[@]}"; do [ "$m" = "$n" ] || peers+="        $(data_ip "$m")"$'\n'; done
      cat >"$d/keepalived.conf" <<CONF
# $n's keepalived (test/lab/peers/keepalived.sh)
global_defs {
    router_id $n
    vrrp_version $ver
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
}
vrrp_instance lab_vip {
    state $state
    interface bond0
    virtual_router_id 51
    priority $prio
    advert_int $adv
    unicast_src_ip $(data_ip "$n")
    unicast_peer {
$peers    }
    virtual_ipaddress {
        $VIP/24 dev bond0
    }
}
CONF
      daemon_start "$n" keepalived /usr/sbin/keepalived -n -l -D -P -G -f "$d/keepalived.conf" \
        -p "$d/keepalived-main.pid" -r "$d/keepalived-vrrp.pid" -c "$d/keepalived-check.pid"
    done
    for i in $(seq 1 100); do
      [ "$("$0" holder)" = node1 ] && { echo "keepalived: the VIP on node1 (advert_int $adv, VRRPv$ver)"; exit 0; }
      sleep 0.1
    done
    echo "keepalived: node1 did not take the VIP in 10 s" >&2; exit 1 ;;
  stop) for n in "${NODES[@]}"; do daemon_stop "$n" keepalived; done ;;
  # a powered-off node keeps its addresses configured (its links are down): it holds nothing
  holder) for n in "${NODES[@]}"; do [ "$(cat "$S/$n/power")" = 1 ] && ip -n "$n" -o addr show dev bond0 2>/dev/null | grep -q " $VIP/" && echo "$n"; done; true ;;
  *) echo "usage: keepalived.sh start [ADVERT_INT [VRRP_VERSION]] | stop | holder" >&2; exit 2 ;;
esac
