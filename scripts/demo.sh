#!/usr/bin/env bash
# The main job, end to end on a fresh Debian 12 machine (root): make a base image from Debian's busybox-static,
# save and load it, build the example app (examples/hello) and run it, rebuild it (every step CACHED), change a
# container and commit it as a second image, serve a registry with `strata registry serve`, push both images (the
# second moves only its new layer), pull them into an empty root (the second downloads only its new layer) and
# check digests and the store.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in busybox-static skopeo runc; do
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
strata() { dist/bin/strata.mjs "$@"; }
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
  STRATA_ROOT="$work/root-$f" dist/bin/strata.mjs load -i "$work/$f"
  got=$(STRATA_ROOT="$work/root-$f" dist/bin/strata.mjs inspect --format '{{.Id}}' busybox)
  [ "$got" = "$id" ] || { echo "image ID changed through $f: $got != $id" >&2; exit 1; }
done
strata system df
strata fsck
echo "== build the example app, run it, rebuild it (nothing runs again)"
strata build -t hello:1 examples/hello
strata run --rm hello:1
strata build -t hello:1 examples/hello 2>&1 | tee "$work/rebuild.log"
steps=$(grep -cE '^#[0-9]+ \[' "$work/rebuild.log"); froms=$(grep -cE '^#[0-9]+ \[[^]]*\] FROM' "$work/rebuild.log")
[ "$(grep -cE '^#[0-9]+ CACHED$' "$work/rebuild.log")" -eq $((steps - froms)) ] || { echo "the rebuild ran a step" >&2; exit 1; }
strata history hello:1
echo "== change a container and commit it"
strata run --name changer hello:1 sh -c 'echo "a note added in a container" > /app/note.txt'
strata diff changer
strata commit -m "add a note" -c 'CMD ["/app/hello.sh"]' changer hello:2
strata rm changer
strata run --rm hello:2
echo "== serve a registry, push both images, pull them into an empty root"
dist/bin/strata.mjs registry serve --addr 127.0.0.1:0 --root "$work/registry" --log-level info 2>"$work/registry.log" &
regpid=$!
for _ in $(seq 50); do grep -q 'registry listening' "$work/registry.log" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o '"url":"[^"]*"' "$work/registry.log" | head -1 | cut -d'"' -f4)
reg=${url#http://}
strata tag hello:1 "$reg/demo/hello:1"
strata tag hello:2 "$reg/demo/hello:2"
strata push --progress plain "$reg/demo/hello:1"
echo "== the second image shares every layer but one: only that one is uploaded"
strata push --progress plain "$reg/demo/hello:2" | tee "$work/push2.log"
[ "$(grep -c 'Layer already exists' "$work/push2.log")" -ge 5 ] || { echo "shared layers were uploaded again" >&2; exit 1; }
pulled() { STRATA_ROOT="$work/root-pulled" dist/bin/strata.mjs "$@"; }
pulled pull --progress plain "$reg/demo/hello:1"
echo "== pulling the second image downloads only its new layer"
pulled pull --progress plain "$reg/demo/hello:2" | tee "$work/pull2.log"
[ "$(grep -c 'Already exists' "$work/pull2.log")" -ge 5 ] || { echo "shared layers were downloaded again" >&2; exit 1; }
for t in 1 2; do
  want=$(strata inspect --format '{{.Id}}' "hello:$t")
  got=$(pulled inspect --format '{{.Id}}' "$reg/demo/hello:$t")
  [ "$got" = "$want" ] || { echo "image ID of hello:$t changed through the registry: $got != $want" >&2; exit 1; }
done
pulled run --rm "$reg/demo/hello:2"
pulled fsck
echo "== skopeo reads what strata pushed"
skopeo inspect --tls-verify=false "docker://$reg/demo/hello:2" | grep -E '"(Digest|Name)"'
skopeo list-tags --tls-verify=false "docker://$reg/demo/hello"
kill -TERM "$regpid"; wait "$regpid" || true; regpid=
echo "demo: ok (hello:1 $(strata inspect --format '{{.Id}}' hello:1), hello:2 $(strata inspect --format '{{.Id}}' hello:2))"
