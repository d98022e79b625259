#!/usr/bin/env bash
# The main job, end to end on a fresh Debian 12 machine (root): make a base image from Debian's busybox-static,
# inspect it, save it in both archive formats, load it into an empty root and check that the digests agree and
# the store is sound. (build, run and push/pull join this script as their issues land.)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
strata() { node dist/src/cli/main.js "$@"; }
export STRATA_ROOT="$work/root"

echo "== import a busybox base image"
bash scripts/busybox-rootfs.sh "$work/rootfs"
strata import --change 'CMD ["sh"]' "$work/rootfs" busybox:latest
strata images
strata history busybox
echo "== save (docker-archive and OCI layout) and load into an empty root"
strata save -o "$work/busybox.tar" busybox
strata save --format oci -o "$work/busybox-oci.tar" busybox
id=$(strata inspect --format '{{.Id}}' busybox)
for f in busybox.tar busybox-oci.tar; do
  STRATA_ROOT="$work/root-$f" node dist/src/cli/main.js load -i "$work/$f"
  got=$(STRATA_ROOT="$work/root-$f" node dist/src/cli/main.js inspect --format '{{.Id}}' busybox)
  [ "$got" = "$id" ] || { echo "image ID changed through $f: $got != $id" >&2; exit 1; }
done
strata system df
strata fsck
echo "demo: ok (image $id)"
