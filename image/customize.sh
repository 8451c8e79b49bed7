#!/bin/bash
# image/customize.sh ROOT VERSION REV [BUNDLE]: stage 2 of image/build.sh, on the unpacked base.
# Plain file operations and `systemctl --root` only: nothing runs inside the tree.
#   overlays/  laid over the root (owner root, modes as in the repository)
#   units/     into /usr/lib/systemd/system (vendor units; /etc stays the admin's), enabled
#   the agent bundle to /usr/lib/bollard, /usr/bin/bollard
#   what must not be the same on every node, or differs from build to build, removed:
#   machine-id, MariaDB's datadir (first boot creates it with this node's identity), logs
set -euo pipefail
. "$(dirname "$0")/lib.sh"
R=${1:?usage: customize.sh ROOT VERSION REV}
VERSION=${2:?}
REV=${3:?}
BUNDLE=${4:-$REPO_DIR/dist/bollard.js}
[ -x "$R/usr/bin/dpkg" ] || die "$R does not look like a Debian root"

# ---- overlays: repository files over the root, owned by root, 0644 (0755 if executable in
# the repository: the checkout's umask does not leak into the image), directories 0755.
# Directories that exist keep their owner and mode (/etc/redis stays redis's).
(cd "$REPO_DIR/overlays" && find . -mindepth 1 | LC_ALL=C sort) | while read -r f; do
  src=$REPO_DIR/overlays/${f#./} dst=$R/${f#./}
  if [ -L "$src" ]; then ln -sfn "$(readlink "$src")" "$dst"
  elif [ -d "$src" ]; then [ -d "$dst" ] || install -d -m 0755 -o 0 -g 0 "$dst"
  else rm -f "$dst"; install -m "$([ -x "$src" ] && echo 0755 || echo 0644)" -o 0 -g 0 "$src" "$dst"
  fi
done
# files that hold or will hold secrets, or the node's config
chmod 0750 "$R/etc/bollard"

# ---- units
install -d "$R/usr/lib/systemd/system"
(cd "$REPO_DIR/units" && find . -type f) | while read -r f; do
  install -D -m 0644 -o 0 -g 0 "$REPO_DIR/units/$f" "$R/usr/lib/systemd/system/${f#./}"
done

# ---- the agent bundle (CommonJS; no package.json: nothing above it says "type": "module")
install -d "$R/usr/lib/bollard"
install -m 0755 "$BUNDLE" "$R/usr/lib/bollard/bollard.js"
if [ -f "$BUNDLE.map" ]; then install -m 0644 "$BUNDLE.map" "$R/usr/lib/bollard/bollard.js.map"; fi
ln -sfn ../lib/bollard/bollard.js "$R/usr/bin/bollard"
printf 'VERSION=%s\nREV=%s\nSOURCE_DATE_EPOCH=%s\n' "$VERSION" "$REV" "${SOURCE_DATE_EPOCH:-}" >"$R/usr/lib/bollard/release"

# the ESP's mount point (fstab: noauto; the A/B image upgrade mounts it, agent/upgrade/image.ts)
install -d -m 0700 "$R/boot/efi"

# ---- enable and disable
sc() { systemctl --root="$R" --quiet "$@"; }
sc enable bollard-firstboot.service bollard-agent.service bollard-grow-data.service systemd-networkd.service bollard-boot-gate.service \
  bollard-console@tty1.service bollard-console@ttyS0.service
# The console replaces the login prompt on tty1 and on the serial console (the getty
# generator would otherwise start serial-getty@ttyS0 for console=ttyS0).
sc mask getty@tty1.service serial-getty@ttyS0.service
# The ESP is bollard's (the A/B image upgrade writes it, agent/upgrade/image.ts): systemd-boot's
# own updater of the loader on it stays off.
sc mask systemd-boot-update.service
# networkd-wait-online would hold boot for 2 min on a node whose cables are not in yet;
# nothing here waits for network-online.target.
sc disable systemd-networkd-wait-online.service
# The agent runs the portal's nginx itself (agent/resources/portal.ts), with its own prefix.
sc disable nginx.service
# No internet on the appliance network: apt's daily jobs would only fail.
sc disable apt-daily.timer apt-daily-upgrade.timer
rm -f "$R/etc/nginx/sites-enabled/default"

# ---- per node and per build: removed here, made on the node
: >"$R/etc/machine-id"                       # empty: systemd makes one on first boot
rm -f "$R/var/lib/dbus/machine-id"
ln -sfn /etc/machine-id "$R/var/lib/dbus/machine-id"
echo bollard >"$R/etc/hostname"               # first boot names the node from its seed
find "$R/var/lib/mysql" -mindepth 1 -delete   # first boot: mariadb-install-db, this node's users
# Build-time logs and backups say when the build ran, not what the image is.
find "$R/var/log" -type f \( -name '*.log' -o -name 'lastlog' -o -name 'faillog' -o -name '[bw]tmp' \) -delete
rm -rf "$R/var/log/journal"/*
rm -f "$R/var/cache/ldconfig/aux-cache" "$R"/var/cache/debconf/*-old "$R"/var/lib/dpkg/*-old \
  "$R/etc/.pwd.lock" "$R"/etc/{passwd,group,shadow,gshadow,subuid,subgid}- "$R/var/lib/systemd/catalog/database"
rm -rf "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* "$R"/tmp/* "$R"/var/tmp/*
# /etc/shadow's "last changed" day of the system users is the day the build ran.
days=$(( ${SOURCE_DATE_EPOCH:-0} / 86400 ))
awk -F: -v OFS=: -v d="$days" '$3 ~ /^[0-9]+$/ { $3 = d } { print }' "$R/etc/shadow" >"$R/etc/shadow.new"
chmod --reference="$R/etc/shadow" "$R/etc/shadow.new"; chown --reference="$R/etc/shadow" "$R/etc/shadow.new"
mv "$R/etc/shadow.new" "$R/etc/shadow"

# ---- logs live on the data partition (fstab binds /var/lib/log onto /var/log), so that they
# survive a switch of root slot: a rollback keeps the failed version's logs.
mkdir -p "$R/var/lib/log"
cp -a "$R/var/log/." "$R/var/lib/log/"
install -d -m 0700 "$R/var/lib/bollard"
