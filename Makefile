# bollard: the two commands that matter are `make lab` and `make test` (see README.md).
SHELL := /bin/bash
SEEDS ?= 1000
RUNS ?= 10
NODE_DEPS := node_modules/.installed
APT_TEST := mosquitto mosquitto-clients

.PHONY: all build test typecheck sim bench-sim deps apt-test lab lab-up lab-down clean

all: build

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(NODE_DEPS)

# Debian packages the tests need, installed only where missing.
apt-test:
	@missing=""; for p in $(APT_TEST); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

build: $(NODE_DEPS)
	node build.mjs

typecheck: $(NODE_DEPS)
	npx tsc --noEmit -p .

test: $(NODE_DEPS) apt-test typecheck build
	node test/run.mjs

sim: $(NODE_DEPS)
	node --import tsx test/sim/cli.ts random --seeds $(SEEDS)

bench-sim: $(NODE_DEPS)
	node --import tsx test/sim/bench.ts

clean:
	rm -rf dist
