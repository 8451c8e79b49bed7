# shellcheck shell=bash
# Config generators for `lab up`: one function per service, each writing under $S only.
# Sourced by test/lab/lab after lib.sh.

# The HA sections of bollard.yaml (ha, mysql, redis, portal) come from gen-ha.sh, when it
# exists: it defines gen_ha_config NODE, whose output is appended to the node's bollard.yaml.
# shellcheck source=/dev/null
[ -f "$LAB_DIR/gen-ha.sh" ] && . "$LAB_DIR/gen-ha.sh"
# The VMs' section (vms:) comes from gen-vm.sh, with LAB_VMS=1 (docs/vm.md).
# shellcheck source=/dev/null
[ -f "$LAB_DIR/gen-vm.sh" ] && . "$LAB_DIR/gen-vm.sh"

secret() { head -c 64 /dev/urandom | base64 | tr -d '/+=' | head -c "${1:-20}"; }
put_secret() { (umask 077; printf '%s\n' "$2" >"$1"); }
get_secret() { head -n1 "$1"; }

# A founder's bus password, derived from the join token exactly as the agent derives it
# (agent/bus/credentials.ts derivedPassword: hex HMAC-SHA256(token, "bollard-bus\n<cluster>\n<node>"),
# first 40 characters), so that the brokers the lab starts and the agents agree.
derived_bus_password() { # TOKEN_FILE NODE
  /usr/bin/python3 -c 'import hmac, hashlib, sys
t = open(sys.argv[1], encoding="utf-8").read().strip().encode()
print(hmac.new(t, ("bollard-bus\n%s\n%s" % (sys.argv[2], sys.argv[3])).encode(), hashlib.sha256).hexdigest()[:40])' "$1" "$CLUSTER" "$2"
}

gen_secrets() {
  mkdir -p "$S/secrets"; chmod 700 "$S/secrets"
  local n
  put_secret "$S/secrets/join.token" "$(secret 40)"
  for n in "${NODES[@]}"; do
    install -m 600 "$S/secrets/join.token" "$S/$n/join.token"   # each node's seed holds the token
    # The founder's bus password the agent derives for itself: the agent is not given it (it
    # settles its own); the lab's tools (and a node without an agent) log in with it.
    put_secret "$S/$n/bus.pass" "$(derived_bus_password "$S/secrets/join.token" "$n")"
    put_secret "$S/$n/bmc.pass" "$(secret 16)"   # ipmi_sim keeps 16 bytes of a password
  done
  put_secret "$S/secrets/mysql-bollard.pass" "$(secret)"
  put_secret "$S/secrets/mysql-repl.pass" "$(secret)"
  put_secret "$S/secrets/mysql-app.pass" "$(secret)"
  # The brokers' first password file and ACL: exactly what the agent writes for the founders'
  # config (agent/bus/broker-auth.ts renderPasswd, renderAcl), so that the agent's first
  # write changes nothing. The agent owns both from then on (a join or readmit adds users).
  (umask 077; broker_passwd >"$S/secrets/mosquitto.passwd") || return 1
  broker_acl >"$S/secrets/mosquitto.acl"
  gen_tls
}

# The bus's TLS as `bollard seed` makes it (agent/provision/pki.ts): one CA for the lab, and
# for each node a key and a certificate (CN its name, subjectAltName its data and management
# addresses and the VIP: the bus's and the web console's, docs/web.md)
# issued with OpenSSL 3's `req -x509 -CA`. The CA's key stays in $S/secrets/tls, the
# operator's: no node holds it. Each node gets $S/NODE/tls/{ca.crt,node.crt,node.key}.
tls_req() { OPENSSL_CONF=/dev/null openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 "$@"; }
gen_tls() {
  local n d ca=$S/secrets/tls
  mkdir -p "$ca"; chmod 700 "$ca"
  tls_req -keyout "$ca/ca.key" -out "$ca/ca.crt" -days 3650 -subj "/O=bollard/OU=$CLUSTER/CN=bollard $CLUSTER cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>"$ca/openssl.log" || { cat "$ca/openssl.log" >&2; return 1; }
  for n in "${NODES[@]}"; do
    d=$(node_dir "$n")/tls
    mkdir -p "$d"; chmod 700 "$d"
    install -m 644 "$ca/ca.crt" "$d/ca.crt"
    tls_req -keyout "$d/node.key" -out "$d/node.crt" -days 3650 -subj "/O=bollard/OU=$CLUSTER/CN=$n" \
      -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -set_serial "0x1$(od -An -tx1 -N15 /dev/urandom | tr -d ' \n')" \
      -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature,keyAgreement" \
      -addext "extendedKeyUsage=serverAuth,clientAuth" -addext "subjectAltName=IP:$(data_ip "$n"),IP:$(mgmt_ip "$n"),IP:$VIP_RESERVED,DNS:$n" \
      -addext "subjectKeyIdentifier=hash" -addext "authorityKeyIdentifier=keyid" 2>>"$ca/openssl.log" || { cat "$ca/openssl.log" >&2; return 1; }
    chmod 600 "$d/node.key"
  done
}

# renderPasswd of the founders' config: one "user:hash" line per member, its password derived
# from the token, then the joiners' shared login (user "join", password "join": it can only
# ask, agent/bus/credentials.ts). Mosquitto $7$ hashes (PBKDF2-SHA512, 101 iterations) with
# the salt the agent derives from "<cluster>/<user>" (mosquittoHash): the agent's lines, byte
# for byte.
broker_passwd() {
  /usr/bin/python3 -c 'import base64, hashlib, hmac, sys
token = open(sys.argv[1], encoding="utf-8").read().strip().encode()
cluster, nodes = sys.argv[2], sys.argv[3:]
def derived(node):
    return hmac.new(token, ("bollard-bus\n%s\n%s" % (cluster, node)).encode(), hashlib.sha256).hexdigest()[:40]
def mosq_hash(password, user):
    salt = hmac.new(b"bollard-salt", ("%s/%s" % (cluster, user)).encode(), hashlib.sha256).digest()[:12]
    h = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return "$7$101$%s$%s" % (base64.b64encode(salt).decode(), base64.b64encode(h).decode())
for n in nodes:
    print("%s:%s" % (n, mosq_hash(derived(n), n)))
print("join:%s" % mosq_hash("join", "join"))' "$S/secrets/join.token" "$CLUSTER" "${NODES[@]}"
}

# renderAcl of the founders' config: each member writes only its own prefix and reads the
# cluster's; the join login writes only its own prefix and reads only the answers to joiners.
broker_acl() {
  local n root=bollard/v1/$CLUSTER
  printf '# written by bollard from the committed cluster config; do not edit\npattern write %s/%%u/#\n\n' "$root"
  for n in "${NODES[@]}"; do printf 'user %s\ntopic read %s/#\n\n' "$n" "$root"; done
  printf 'user join\ntopic read %s/+/join/#\n' "$root"
}

gen_mosquitto() { # NODE
  local n=$1 d t; d=$(node_dir "$1")/mosquitto; t=$(node_dir "$1")/tls
  mkdir -p "$d"
  install -m 600 "$S/secrets/mosquitto.passwd" "$d/passwd"
  install -m 644 "$S/secrets/mosquitto.acl" "$d/acl"
  # TLS as on a node (agent/provision/seed-apply.ts mosquittoTlsLines): a certificate of the
  # cluster CA required of every client, the password on top (docs/bus.md)
  cat >"$d/mosquitto.conf" <<EOF
# $n's broker (generated by test/lab/lab up)
per_listener_settings false
listener 1883 $(data_ip "$n")
cafile $t/ca.crt
certfile $t/node.crt
keyfile $t/node.key
require_certificate true
use_identity_as_username false
tls_version tlsv1.2
allow_anonymous false
password_file $d/passwd
acl_file $d/acl
persistence false
$([ "$(id -u)" = 0 ] && echo "user root" || echo "# not root: mosquitto runs as its caller")
pid_file $d/mosquitto.pid
log_dest file $d/mosquitto.log
log_timestamp_format %Y-%m-%dT%H:%M:%S
EOF
}

gen_mariadb() { # NODE; also initialises the datadir (mariadb-install-db, ~0.5 s)
  local n=$1 d; d=$(node_dir "$1")/mysql
  mkdir -p "$d/data" "$d/tmp"
  cat >"$d/my.cnf" <<EOF
# $n's MariaDB (generated by test/lab/lab up). Replication is the agent's to set up.
[mariadbd]
user=root
datadir=$d/data
tmpdir=$d/tmp
socket=$d/mysqld.sock
pid-file=$d/mysqld.pid
log-error=$d/error.log
bind-address=$(data_ip "$n")
port=3306
server-id=$(n_of "$n")
log-bin=$n-bin
log-slave-updates=1
binlog-format=ROW
sync_binlog=1
gtid_strict_mode=1
skip-name-resolve
# Every node starts as a fenced replica: read-only, no replication thread started, the
# semi-sync role a replica's. The agent makes one node the primary (read_only=0, semi-sync
# master side on) and points the others at it. The replica side of semi-sync may be on
# everywhere; the master side only on the primary (LAB-NOTES).
read_only=1
skip-slave-start
init_rpl_role=SLAVE
rpl_semi_sync_slave_enabled=ON
rpl_semi_sync_master_wait_point=AFTER_SYNC
rpl_semi_sync_master_timeout=30000
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
performance_schema=OFF
[client]
socket=$d/mysqld.sock
EOF
  mariadb-install-db --defaults-file="$d/my.cnf" --auth-root-authentication-method=socket \
    --skip-test-db >"$d/install.log" 2>&1 || { cat "$d/install.log" >&2; return 1; }
}

# Users every node gets, outside the binlog so that the three GTID histories start equal.
mariadb_bootstrap() { # NODE
  local n=$1 d; d=$(node_dir "$1")/mysql
  mariadb --socket="$d/mysqld.sock" -u root <<EOF
SET sql_log_bin=0;
CREATE USER 'bollard'@'%' IDENTIFIED BY '$(get_secret "$S/secrets/mysql-bollard.pass")';
GRANT ALL PRIVILEGES ON *.* TO 'bollard'@'%' WITH GRANT OPTION;
CREATE USER 'repl'@'198.18.0.%' IDENTIFIED BY '$(get_secret "$S/secrets/mysql-repl.pass")';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'198.18.0.%';
$(site2_on && printf "CREATE USER 'repl'@'198.19.2.%%' IDENTIFIED BY '%s';\nGRANT REPLICATION SLAVE ON *.* TO 'repl'@'198.19.2.%%';" "$(get_secret "$S/secrets/mysql-repl.pass")")
CREATE DATABASE fms;
CREATE USER 'app'@'198.18.0.%' IDENTIFIED BY '$(get_secret "$S/secrets/mysql-app.pass")';
GRANT ALL PRIVILEGES ON fms.* TO 'app'@'198.18.0.%';
SET sql_log_bin=1;
RESET MASTER;
EOF
}

gen_redis() { # NODE
  local n=$1 d; d=$(node_dir "$1")/redis
  mkdir -p "$d"
  cat >"$d/redis.conf" <<EOF
# $n's Redis (generated by test/lab/lab up). Replication is the agent's to set up.
bind $(data_ip "$n") 127.0.0.1
port 6379
protected-mode no
daemonize no
dir $d
pidfile $d/redis.pid
logfile $d/redis.log
save ""
# Every write in the append-only file before it is acknowledged, on every node: what a whole-room
# power cut leaves is what the cold start compares (agent/resources/redis-aof.ts).
appendonly yes
appendfsync always
aof-use-rdb-preamble yes
repl-diskless-sync yes
repl-diskless-sync-delay 0
replica-announce-ip $(data_ip "$n")
# Fenced from the start: no write is accepted until the agent makes this node the master and
# lifts the bound (min-replicas-to-write is an int; 2147483647 replicas never connect).
min-replicas-to-write 2147483647
min-replicas-max-lag 10
# ... and a replica of an address nothing listens on: a server that (re)starts (a power blip,
# a crash, the agent's restart of a hung one) is read-only and refuses its peers' SYNC
# ("-NOMASTERLINK"), so a master that comes back empty cannot wipe its replicas with a full
# resync (issue 22). The agent makes it a master or a replica once the leader has compared it.
replicaof 127.0.0.1 1
EOF
}

gen_nginx() { # NODE
  local n=$1 d; d=$(node_dir "$1")/nginx
  mkdir -p "$d/stream.d" "$d/http.d" "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
# $n's access portal (generated by test/lab/lab up). The agent writes its upstreams and
# servers into stream.d/*.conf (MySQL, Redis: TCP) and http.d/*.conf, then runs
#   nginx -p $d -c $d/nginx.conf -e $d/error.log -s reload
# The agent's portal may rewrite this file too (agent/resources/portal-render.ts): the lab's
# own probe is in http.d/lab.conf so that it survives, and the lab starts nginx with
# -g "daemon off;" rather than saying it here.
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
user root;
worker_processes 1;
pid $d/nginx.pid;
events { worker_connections 512; }
stream {
    include $d/stream.d/*.conf;
}
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    include $d/http.d/*.conf;
}
EOF
  cat >"$d/http.d/lab.conf" <<EOF
# The lab's own probe (test/lab/lab status, the topology test); the agent's servers are beside it.
server {
    listen $(data_ip "$n"):8099;
    location = /lab/health { return 200 "$n nginx ok\n"; }
}
EOF
}

gen_agent_config() { # NODE: bollard.yaml (agent/config/schema.ts) and resources.yaml (the rest)
  local n=$1 d m sw
  d=$(node_dir "$n")
  mkdir -p "$d/state"
  {
    cat <<EOF
# bollard agent config for the lab's $n, generated by test/lab/lab up (schema: agent/config/schema.ts).
# With join.token it is this node's seed: cluster name, node name, the members' brokers and
# the join token. No bus password: the agent settles its own (agent/bus/identity.ts). With no
# state it first tries to join through its peers; a founder (in members) that hears no leader
# within join.timeout_ms forms the cluster with the password derived from the token. A node
# that joined keeps the password it was given in state_dir/bus.password.
cluster:
  name: $CLUSTER
  node: $n
  members:
EOF
    for m in "${NODES[@]}"; do echo "    - { name: $m, address: \"$(data_ip "$m"):1883\" }"; done
    cat <<EOF
  join:
    token_file: $d/join.token
    timeout_ms: ${LAB_JOIN_TIMEOUT_MS:-3000}        # a founder's wait for a leader before forming the cluster
bus:
  username: $n
  broker:                           # this node's mosquitto: the agent rewrites these and SIGHUPs it
    password_file: $d/mosquitto/passwd
    acl_file: $d/mosquitto/acl
    pid_file: $d/mosquitto/mosquitto.pid
  tls:                              # every broker requires a certificate of the lab's CA; the agent checks theirs
    ca_file: $d/tls/ca.crt
    cert_file: $d/tls/node.crt
    key_file: $d/tls/node.key
state_dir: $d/state
log:
  level: info
EOF
  } >"$d/bollard.yaml"
  # The HA sections (gen-ha.sh), for the lab in namespaces: the loopback mode runs no MySQL,
  # Redis or nginx for them to manage. LAB_NO_HA=1 leaves them out: agents that only form
  # the cluster (the cluster and join tests: no fencing or promotion in the way).
  if ! loopback && [ "${LAB_NO_HA:-0}" != 1 ] && declare -F gen_ha_config >/dev/null; then
    gen_ha_config "$n" >>"$d/bollard.yaml" || return 1
  fi
  if [ "${LAB_VMS:-0}" = 1 ] && ! loopback && declare -F gen_vm_config >/dev/null; then gen_vm_config "$n" >>"$d/bollard.yaml" || return 1; fi
  chmod 600 "$d/bollard.yaml"
  loopback && return 0

  # What the lab provides that the agent's config has no keys for yet (MySQL, Redis, the
  # portal, the VIP, fencing). TODO(agent): move into bollard.yaml as the schema grows.
  {
    cat <<EOF
# The lab's resources for $n, generated by test/lab/lab up. Not read by the agent (yet).
node: $n
addresses:
  data: $(data_ip "$n")/24         # bond0
  mgmt: $(mgmt_ip "$n")/24         # mgmt
  vip: $VIP_RESERVED/24             # reserved for the agent's VIP (on bond0); the lab configures none
mysql:
  host: $(data_ip "$n")
  port: 3306
  socket: $d/mysql/mysqld.sock     # root over the socket (unix_socket auth)
  user: bollard                     # ALL PRIVILEGES WITH GRANT OPTION, from any host
  password_file: $S/secrets/mysql-bollard.pass
  replication: { user: repl, password_file: $S/secrets/mysql-repl.pass }
  app: { user: app, database: fms, password_file: $S/secrets/mysql-app.pass }
redis:
  host: $(data_ip "$n")
  port: 6379
portal:
  prefix: $d/nginx
  conf: $d/nginx/nginx.conf
  stream_include: $d/nginx/stream.d
  http_include: $d/nginx/http.d
  reload: [nginx, -p, $d/nginx, -c, $d/nginx/nginx.conf, -e, $d/nginx/error.log, -s, reload]
fence:
  ipmi:                             # ipmitool -I lanplus -C 3 -H HOST -U admin -E (IPMI_PASSWORD)
EOF
    for m in "${NODES[@]}"; do
      echo "    $m: { host: $(bmc_ip "$m"), port: 623, cipher_suite: $BMC_CIPHER, user: admin, password_file: $S/$m/bmc.pass }"
    done
    echo "  switches:                         # SNMP v2c, IF-MIB; ports by ifDescr"
    for sw in "${SWITCHES[@]}"; do
      echo "    $sw: { host: $(sw_ip "$sw"), port: $SNMP_PORT, read_community: public, write_community: private, ports: { node1: swp1, node2: swp2, node3: swp3, client: swp9 } }"
    done
    cat <<EOF
watchdog:
  usec: $((WATCHDOG_SEC * 1000000))          # WATCHDOG_USEC from the lab's supervisor
  notify_socket: $d/notify.sock
EOF
  } >"$d/resources.yaml"
  chmod 600 "$d/resources.yaml"
}

# ---- BMC: lan.conf, the emulation (sensors), and the SDR repository ipmi_sim serves.
SENSOR_DEFAULTS="temp=40 fan1=6000 fan2=6000 psu1=1 psu2=1"
sensor_num() { case $1 in temp) echo 1 ;; fan1) echo 2 ;; fan2) echo 3 ;; psu1) echo 4 ;; psu2) echo 5 ;; *) return 1 ;; esac; }

sdr_threshold() { # NUM NAME TYPE ENTITY UNIT M upper|lower T1 T2 T3
  local num=$1 name=$2 type=$3 entity=$4 unit=$5 m=$6 dir=$7 t1=$8 t2=$9 t3=${10} k
  cat <<EOF
sdr type 1
	sensor_owner_id		0x20
	sensor_owner_lun	0
	channel_number		0
	sensor_number		$num
	entity_id		$entity
	entity_instance		1
	init_scanning		true
	init_events		true
	init_thresholds		true
	init_sensor_type	true
	default_event_gen_on	true
	default_sensor_scan_on	true
	sensor_auto_rearm	true
	sensor_threshold_access	settable
	sensor_event_msg_ctrl	per_state
	sensor_type		$type
	event_reading_type_code	1
EOF
  if [ "$dir" = upper ]; then
    for k in unc uc unr; do printf '\treturn_%s\t\ttrue\n\tassert_%sgh\t\ttrue\n\tdeassert_%sgh\t\ttrue\n\t%s_thrsh_settable\ttrue\n' $k $k $k $k; done
    printf '\tunc_thresh\t\t%s\n\tuc_thresh\t\t%s\n\tunr_thresh\t\t%s\n' "$t1" "$t2" "$t3"
  else
    for k in lnc lc lnr; do printf '\treturn_%s\t\ttrue\n\tassert_%sgl\t\ttrue\n\tdeassert_%sgl\t\ttrue\n\t%s_thrsh_settable\ttrue\n' $k $k $k $k; done
    printf '\tlnc_thresh\t\t%s\n\tlc_thresh\t\t%s\n\tlnr_thresh\t\t%s\n' "$t1" "$t2" "$t3"
  fi
  cat <<EOF
	analog_data_format	unsigned
	rate_unit		none
	modifier_unit		none
	percentage		false
	base_unit		$unit
	modifier_unit_code	unspecified
	linearization		linear
	m			$m
	tolerance		0
	b			0
	accuracy		1
	accuracy_exp		0
	sensor_direction	input
	r_exp			0
	b_exp			0
	sensor_maximum		255
	sensor_minimum		0
	id_string		"$name"
endsdr
EOF
}

sdr_psu() { # NUM INSTANCE NAME: PSU status, sensor-specific offsets 0 presence, 1 failure, 3 input lost
  cat <<EOF
sdr type 2
	sensor_owner_id		0x20
	sensor_owner_lun	0
	channel_number		0
	sensor_number		$1
	entity_id		power_supply
	entity_instance		$2
	init_scanning		true
	init_events		true
	init_sensor_type	true
	default_event_gen_on	true
	default_sensor_scan_on	true
	sensor_auto_rearm	true
	sensor_type		Power_Supply
	event_reading_type_code 0x6f
	assert_event0		true
	assert_event1		true
	assert_event3		true
	deassert_event0		true
	deassert_event1		true
	deassert_event3		true
	event0_state_ret	true
	event1_state_ret	true
	event3_state_ret	true
	id_string		"$3"
endsdr
EOF
}

gen_bmc() { # NODE
  local n=$1 d kv guid
  d=$S/bmc/$n
  mkdir -p "$d" "$S/bmc/ipmi_sim/$n"
  for kv in $SENSOR_DEFAULTS; do echo "${kv#*=}" >"$d/${kv%%=*}"; done
  {
    cat <<EOF
# $n's BMC SDR repository (compiled with sdrcomp into $S/bmc/ipmi_sim/$n/sdr.20.main).
# id_strings are mixed case: all-caps ones are packed as 6-bit ASCII and come out garbled.
sdr type 18
	device_slave_address	0x20
	device_channel_number	0
	chassis			true
	ipmb_event_gen		false
	ipmb_event_recv		false
	fru_inventory		false
	sel			true
	sdr			true
	sensor			true
	entity_id		system_board
	entity_instance		1
	id_string		"Lab $n BMC"
endsdr
sdr type 3
	sensor_owner_id		0x20
	sensor_owner_lun	0
	channel_number		0
	sensor_number		0
	entity_id		system_board
	entity_instance		1
	sensor_type		Watchdog_2
	event_reading_type_code	0x6f
	id_string		"Watchdog"
endsdr
EOF
    sdr_threshold 1 Temp Temperature system_board degrees_C 1 upper 70 80 90
    # Fans: RPM = raw x 100; entity 29 (fan_cooling is refused by sdrcomp).
    sdr_threshold 2 Fan1 Fan 29 RPM 100 lower 20 10 5
    sdr_threshold 3 Fan2 Fan 29 RPM 100 lower 20 10 5
    sdr_psu 4 1 "PSU1 Status"
    sdr_psu 5 2 "PSU2 Status"
  } >"$d/$n.sdrs"
  sdrcomp -o "$S/bmc/ipmi_sim/$n/sdr.20.main" "$d/$n.sdrs" >"$d/sdrcomp.log" 2>&1 || { cat "$d/sdrcomp.log" >&2; return 1; }

  # Sensors poll their file every second; `lab sensor` writes the file and also sets the
  # value at once through the console port. Threshold bytes: unr uc unc lnr lc lnc.
  cat >"$d/$n.emu" <<EOF
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
# 0: the watchdog sensor (must be sensor 0)
sensor_add 0x20 0 0 35 0x6f event-only
sensor_set_event_support 0x20 0 0 enable scanning per-state 000000000001111 000000000000000 000000000001111 000000000000000
# 1: Temp, degrees C; upper non-critical 70, critical 80, non-recoverable 90
sensor_add 0x20 0 1 0x01 0x01 poll 1000 file "$d/temp"
sensor_set_threshold 0x20 0 1 settable 111000 90 80 70 00 00 00
sensor_set_event_support 0x20 0 1 enable scanning per-state 000111111000000 000111111000000 000111111000000 000111111000000
# 2, 3: Fan1, Fan2; the file holds RPM, the reading is RPM/100; lower nc 2000, cr 1000, nr 500
sensor_add 0x20 0 2 0x04 0x01 poll 1000 file "$d/fan1" div=100
sensor_set_threshold 0x20 0 2 settable 000111 00 00 00 5 10 20
sensor_set_event_support 0x20 0 2 enable scanning per-state 000000000111111 000000000111111 000000000111111 000000000111111
sensor_add 0x20 0 3 0x04 0x01 poll 1000 file "$d/fan2" div=100
sensor_set_threshold 0x20 0 3 settable 000111 00 00 00 5 10 20
sensor_set_event_support 0x20 0 3 enable scanning per-state 000000000111111 000000000111111 000000000111111 000000000111111
# 4, 5: PSU1, PSU2 status; the file holds the state bits (1 ok, 3 failed, 9 input lost, 0 absent)
sensor_add 0x20 0 4 0x08 0x6f poll 1000 file "$d/psu1"
sensor_set_event_support 0x20 0 4 enable scanning per-state 000000000001011 000000000001011 000000000001011 000000000001011
sensor_add 0x20 0 5 0x08 0x6f poll 1000 file "$d/psu2"
sensor_set_event_support 0x20 0 5 enable scanning per-state 000000000001011 000000000001011 000000000001011 000000000001011
mc_enable 0x20
EOF
  guid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cat >"$d/lan.conf" <<EOF
# $n's BMC (ipmi_sim). Reached over the mgmt network: ipmitool -I lanplus -C $BMC_CIPHER -H $(bmc_ip "$n") -U admin -E
name "$n"
set_working_mc 0x20
  startlan 1
    addr $(bmc_ip "$n") 623
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid $guid
  endlan
  chassis_control "$LAB_DIR/power $n"
  user 2 true "admin" "$(get_secret "$S/$n/bmc.pass")" admin 10 none md2 md5 straight
# A text port for changing sensors (ipmi_sim_cmd(5)); on loopback inside the mgmt namespace.
console 127.0.0.1 $(bmc_console_port "$n")
EOF
  chmod 600 "$d/lan.conf"
}
bmc_console_port() { echo "900$(n_of "$1")"; }

gen_snmpd() { # SWITCH
  local sw=$1 d; d=$S/$sw
  mkdir -p "$d/persist"
  cat >"$d/snmpd.conf" <<EOF
# $sw's SNMP agent (generated by test/lab/lab up). IF-MIB over the ports of its bridge.
agentAddress udp:$(sw_ip "$sw"):$SNMP_PORT
rocommunity public default
rwcommunity private $MGMT_NET
sysName $sw
sysLocation bollard lab
dontLogTCPWrappersConnects yes
EOF
}
