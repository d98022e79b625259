#!/usr/bin/env bash
# The main job, end to end on a fresh Debian 12 machine (root): make a base image from Debian's busybox-static,
# inspect it, save it in both archive formats, load it into an empty root and check that the digests agree and
# the store is sound, then serve a registry with `strata registry serve`, push the image to it, push again (nothing
# moves), pull it into an empty root and compare (build and run join this script as their issues land).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in busybox-static skopeo; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
regpid=
trap '[ -n "$regpid" ] && kill "$regpid" 2>/dev/null; rm -rf "$work"' EXIT
strata() { node dist/bin/strata.mjs "$@"; }
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
  STRATA_ROOT="$work/root-$f" node dist/bin/strata.mjs load -i "$work/$f"
  got=$(STRATA_ROOT="$work/root-$f" node dist/bin/strata.mjs inspect --format '{{.Id}}' busybox)
  [ "$got" = "$id" ] || { echo "image ID changed through $f: $got != $id" >&2; exit 1; }
done
strata system df
strata fsck
echo "== serve a registry, push the image to it and pull it back into an empty root"
node dist/bin/strata.mjs registry serve --addr 127.0.0.1:0 --root "$work/registry" --log-level info 2>"$work/registry.log" &
regpid=$!
for _ in $(seq 50); do grep -q 'registry listening' "$work/registry.log" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o '"url":"[^"]*"' "$work/registry.log" | head -1 | cut -d'"' -f4)
reg=${url#http://}
strata tag busybox "$reg/demo/busybox:1"
strata push --progress plain "$reg/demo/busybox:1"
echo "== a second push finds every layer already there"
strata push --progress plain "$reg/demo/busybox:1"
STRATA_ROOT="$work/root-pulled" node dist/bin/strata.mjs pull --progress plain "$reg/demo/busybox:1"
got=$(STRATA_ROOT="$work/root-pulled" node dist/bin/strata.mjs inspect --format '{{.Id}}' "$reg/demo/busybox:1")
[ "$got" = "$id" ] || { echo "image ID changed through the registry: $got != $id" >&2; exit 1; }
STRATA_ROOT="$work/root-pulled" node dist/bin/strata.mjs fsck
echo "== skopeo reads what strata pushed"
skopeo inspect --tls-verify=false "docker://$reg/demo/busybox:1" | grep -E '"(Digest|Name)"'
curl -s "$url/v2/demo/busybox/tags/list"; echo
kill -TERM "$regpid"; wait "$regpid" || true; regpid=
echo "demo: ok (image $id)"
