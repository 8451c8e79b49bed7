# shellcheck shell=bash
# Helpers shared by the image scripts (build.sh, cluster-test.sh, vm.sh). Sourced, not run.

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$IMAGE_DIR")
_T0=$EPOCHREALTIME

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[%6ss] %s\n' "$(since "$_T0")" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# `step NAME CMD...`: runs CMD, logs NAME with how long it took.
step() {
  local name=$1 t0 rc=0; shift
  t0=$EPOCHREALTIME
  log "$name ..."
  "$@" || rc=$?
  [ $rc -eq 0 ] || die "$name failed (exit $rc)"
  log "$name: done in $(since "$t0") s"
}

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (it creates files owned by other users, and boots QEMU with KVM)"; }

# Installs the host packages a script needs, only those missing (Debian's packages only).
need_host_packages() {
  local missing="" p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  log "installing host packages:$missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || die "apt-get install$missing failed"
}

# The version in package.json (the image's name carries it).
repo_version() { node -p 'require(process.argv[1]).version' "$REPO_DIR/package.json"; }

# Non-comment, non-empty lines of a list file, sorted and unique.
list_file() { sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1" | sort -u; }

human() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1"; }
