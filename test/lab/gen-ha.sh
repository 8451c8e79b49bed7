# test/lab/gen-ha.sh: the data-path sections of each node's bollard.yaml (agent/config/ha-schema.ts):
# the nodes' data addresses, BMCs and switch ports (with the NIC cabled there) for fencing and
# alarms, the switches' SNMP agents, the VIP on bond0, and the node's MySQL, Redis and nginx
# portal; then the hardware watch (docs/alarms.md, docs/metrics.md): alarms, the metrics
# endpoint on the node's data address, and the emulated bond's status file. Sourced by gen.sh.
gen_ha_config() { # NODE: prints YAML to append to bollard.yaml
  local n=$1 d m sw i
  d=$(node_dir "$n")
  loopback && return 0  # the loopback mode runs agents and brokers only
  echo "ha:"
  echo "  nodes:"
  for m in "${NODES[@]}"; do
    echo "    $m:"
    echo "      address: $(data_ip "$m")"
    echo "      bmc: { host: $(bmc_ip "$m"), port: 623, user: admin, password_file: $S/$m/bmc.pass, cipher: $BMC_CIPHER, timeout_s: 1, retries: 1 }"
    echo "      ports:"
    i=0  # eth0 is cabled to the first switch, eth1 to the second
    for sw in "${SWITCHES[@]}"; do echo "        - { switch: $sw, port: $(port_of "$m"), nic: eth$i }"; i=$((i + 1)); done
  done
  echo "  switches:"
  for sw in "${SWITCHES[@]}"; do
    echo "    $sw: { host: $(sw_ip "$sw"), port: $SNMP_PORT, version: \"2c\", community: public, write_community: private, timeout_ms: 500 }"
  done
  cat <<EOF
  vip: { address: $VIP_RESERVED/24, iface: bond0 }
  watchdog_ms: $((WATCHDOG_SEC * 1000))
  fence_margin_ms: 1000
mysql:
  flavour: mariadb
  port: 3306
  user: bollard
  password_file: $S/secrets/mysql-bollard.pass
  repl_user: repl
  repl_password_file: $S/secrets/mysql-repl.pass
  repl_host: "198.18.0.%"
  semi_sync_timeout_ms: 30000
  start_cmd: [$LAB_DIR/lab, _svc-start, $n, mariadb]   # the lab's systemd: after the agent fenced it
redis:
  port: 6379
  min_replicas_max_lag_s: 2
  start_cmd: [$LAB_DIR/lab, _svc-start, $n, redis]
portal:
  prefix: $d/nginx
  mysql_listen: "3307"
  redis_listen: "6380"
alarms:
  max_clear_after_ms: ${LAB_MAX_CLEAR_AFTER_MS:-60000}         # a flapping fault holds at most a minute: the lab's tests follow each other
$([ -z "${LAB_CLEAR_AFTER_MS:-}" ] || echo "  clear_after_ms: $LAB_CLEAR_AFTER_MS   # LAB_CLEAR_AFTER_MS: the alarms test's shorter hold")
metrics:
  enabled: true
  listen: "$(data_ip "$n"):9464"
$([ -z "${LAB_FENCE_CHECK_MS:-}" ] || printf '%s\n' 'readiness:' "  fence_check_ms: $LAB_FENCE_CHECK_MS   # LAB_FENCE_CHECK_MS: the readiness test's shorter round")
$([ "${LAB_NO_WEB:-}" = 1 ] || printf '%s\n' 'web:' '  enabled: true' '  listen: ["0.0.0.0:443"]           # the node address and, where it is held, the VIP (docs/web.md)')
hw:
  host:
    bonds: [{ name: bond0, file: $d/bond0.status }]   # bond0 is emulated: bondd writes its status there
EOF
  if [ "${LAB_BACKUP:-}" = 1 ]; then  # backups (docs/backup.md): test/lab/backup.test.ts
    cat <<EOF
backup:
  target: $S/{node}/backup           # each node's own directory; the lab's nodes share one filesystem
  mysql_every_s: 0                   # on demand only: the test says when
  redis_every_s: 0
  verify_every_s: ${LAB_BACKUP_VERIFY_S:-20}
  archive: true
EOF
  fi
  if site2_on; then gen_site2_config; fi
}
