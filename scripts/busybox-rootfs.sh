#!/usr/bin/env bash
# Make a minimal root filesystem from Debian's busybox-static in DIR: /bin/busybox with a symlink per applet,
# /etc/passwd and /etc/group, /tmp. `strata import DIR busybox:latest` turns it into the base image that the tests
# and the demo use (no registry needed).
set -euo pipefail
dir=${1:?usage: busybox-rootfs.sh DIR}
bb=/bin/busybox
if [ ! -x "$bb" ]; then
  echo "busybox-rootfs: $bb is missing: apt-get install busybox-static" >&2
  exit 1
fi
mkdir -p "$dir"/{bin,etc,tmp,root,proc,sys,dev,home,var/log}
chmod 1777 "$dir/tmp"
chmod 700 "$dir/root"
install -m 0755 "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
mkdir -p "$dir/usr/bin" "$dir/sbin" "$dir/usr/sbin"
cat >"$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat >"$dir/etc/group" <<'G'
root:x:0:
daemon:x:1:
nogroup:x:65534:
G
echo "busybox" >"$dir/etc/hostname"
# Fixed mtimes: the same busybox package gives the same layer digest on every machine.
find "$dir" -exec touch -h -d @0 {} +
