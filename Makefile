# bollard: the two commands that matter are `make lab` and `make test` (see README.md).
SHELL := /bin/bash
SEEDS ?= 1000
RUNS ?= 10
NODE_DEPS := node_modules/.installed
# What the lab and the tests run for real (LAB-NOTES.md): installed only where missing.
APT_PKGS := mosquitto mosquitto-clients mariadb-server mariadb-backup redis-server nginx libnginx-mod-stream \
	ipmitool openipmi snmpd snmp iproute2 iptables iputils-ping iputils-arping socat tmux \
	qemu-system-x86 qemu-system-common qemu-utils xz-utils perl python3 fdisk dosfstools mtools chromium openssl libnss3-tools

.PHONY: bench-peers test-site bench-vm bench-web test-web test-upgrade test-coldstart test-failover test-faults nemesis all build test typecheck sim bench-sim bench-failover bench-idle deps apt lab lab-up lab-down image image-cluster-test image-upgrade-test clean

all: build

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(NODE_DEPS)

# Debian packages, installed only where missing.
apt:
	@missing=""; for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

build: $(NODE_DEPS)
	node build.mjs

typecheck: $(NODE_DEPS)
	npx tsc --noEmit -p .

test: $(NODE_DEPS) apt typecheck build
	IMAGE_TEST=1 node test/run.mjs

sim: $(NODE_DEPS)
	node --import tsx test/sim/cli.ts random --seeds $(SEEDS)

bench-sim: $(NODE_DEPS)
	node --import tsx test/sim/bench.ts

# The data-path failover cases in the lab alone (test/lab/failover.test.ts, also run by
# make test in the lab group; about 2-4 minutes).
test-failover: $(NODE_DEPS) apt build
	node --import tsx test/lab/failover.test.ts

# The web console in a browser in the lab alone (test/lab/web.test.ts, also run by make test;
# 32-64 s of tests after lab up): playwright-core drives Debian's chromium; screenshots in
# test-artifacts/web/.
test-web: $(NODE_DEPS) apt build
	flock -o /run/lock/bollard-lab.lock node --import tsx test/lab/web.test.ts

# What the web console costs an idle agent with nobody watching: one node measured with it
# on, then booted with it off (test/lab/bench-web.ts; about 5 minutes).
bench-web: $(NODE_DEPS) apt build
	SECONDS_IDLE=$(SECONDS_IDLE) flock -o /run/lock/bollard-lab.lock node --import tsx test/lab/bench-web.ts

# The faults smaller than a node in the lab alone (test/lab/faults.test.ts, also run by make
# test; about 3 minutes): agent stalls, server kills and hangs, power blips.
test-faults: $(NODE_DEPS) apt build
	node --import tsx test/lab/faults.test.ts

# The whole room's power cut in the lab alone (test/lab/coldstart.test.ts, also run by make test;
# about 1 minute): all three nodes off and on; off and two on, the third returning later.
test-coldstart: $(NODE_DEPS) apt build
	flock -o /run/lock/bollard-lab.lock node --import tsx test/lab/coldstart.test.ts

# The rolling upgrade of the agent bundle in the lab alone (test/lab/upgrade.test.ts, also run by
# make test; about 2.5 minutes): mixed versions, a good rollout under a writer, a bad bundle rolled back.
test-upgrade: $(NODE_DEPS) apt build
	node --import tsx test/lab/upgrade.test.ts

# The second site in the lab alone (test/lab/site.test.ts, also run by make test; about 75 s):
# re-point after a failover, the lag alarm, promote with the primary room off (docs/site.md).
test-site: $(NODE_DEPS) apt build
	flock -o /run/lock/bollard-lab.lock node --import tsx test/lab/site.test.ts

# The fault campaign (test/lab/nemesis.ts): RUNS random schedules from SEED, one or two faults at
# once, each checked for lost writes, two writable primaries, health and equal data after healing.
nemesis: $(NODE_DEPS) apt build
	node --import tsx test/lab/nemesis.ts --runs $(RUNS) $(if $(SEED),--seed $(SEED),)

# RUNS power-off failovers and one switchover in the lab, under a writer through the VIP.
bench-failover: $(NODE_DEPS) apt build
	RUNS=$(RUNS) node --import tsx test/lab/bench-failover.ts

# The VMs in the lab (docs/vm.md): node power-off to the guest's first acknowledged write on
# its new node (RUNS times, p50/p99, the guest's boot apart), acknowledged guest writes lost,
# guest write latency with the mirror against without it, a 256 MB guest's live migration.
# Builds (once, cached) the lab guest from Debian packages. About 5-8 minutes.
bench-vm: $(NODE_DEPS) apt build
	RUNS=$(RUNS_VM) node --import tsx test/lab/bench-vm.ts
RUNS_VM ?= 5

# bollard against Redis Sentinel, MHA, Pacemaker + Corosync and keepalived (docs/ha.md "Peers"):
# RUNS power-offs of the primary's node each, under the same writer; one table, one last line
# "peers: ...". Not part of make test. The peers come from Debian's packages (openssh-server:
# MHA reaches its nodes over ssh only; crmsh loads the Pacemaker configuration), installed where missing; under the lab's lock.
PEER_PKGS := redis-sentinel mha4mysql-manager mha4mysql-node pacemaker corosync crmsh resource-agents fence-agents keepalived openssh-server
bench-peers: $(NODE_DEPS) apt build
	@missing=""; for p in $(PEER_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi
	flock -o /run/lock/bollard-lab.lock env RUNS=$(RUNS) node --import tsx test/lab/bench-peers.ts

# RSS and CPU (agent + children) of the lab's idle agents over SECONDS (default 60); it only
# reads /proc. Other agents: node --import tsx test/lab/bench-idle.ts [--seconds N] PID...
SECONDS_IDLE ?= 60
bench-idle: $(NODE_DEPS)
	node --import tsx test/lab/bench-idle.ts --seconds $(SECONDS_IDLE)

# The lab: the whole appliance on this machine (docs/lab.md). `make lab` sets up everything,
# brings the lab up and shows node1's console (its status until the console exists).
lab: lab-up
	test/lab/lab console node1

lab-up: $(NODE_DEPS) apt build
	test/lab/lab up

lab-down:
	test/lab/lab down

# The node image (docs/image.md): dist/bollard-node-<version>.img, its .sha256 and manifest.
image: $(NODE_DEPS) build
	image/build.sh

# Three copies of the image boot with three seeds under QEMU and form a cluster.
image-cluster-test: image
	image/cluster-test.sh

# One node through two A/B image upgrades under QEMU: a good one, then a broken one that rolls
# back by itself (docs/upgrade.md "Image upgrade"). Long (TCG here: about 35 min): not in make test.
image-upgrade-test: image
	image/upgrade-test.sh

clean:
	rm -rf dist
