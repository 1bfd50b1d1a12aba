#!/usr/bin/env bash
# A Debian bookworm base with Python 3.11, made by debootstrap from Debian's archive (no
# image registry is reachable here) and imported into podman as paincare-base:bookworm.
# The Dockerfile takes it through its PYTHON_IMAGE argument. Cached: the rootfs tarball
# lives in .cache/deploy-proof/ and is made once.
#   scripts/deploy_proof/base_image.sh            # prints the image name
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache="$root/.cache/deploy-proof"
tarball="$cache/base-bookworm.tar"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "base_image.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
  rootfs=$(mktemp -d "$cache/.rootfs.XXXXXX")
  echo "base_image.sh: debootstrap bookworm (once) ..." >&2
  nice -n 10 debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
fi
plain=localhost/paincare-base:bookworm-plain
if ! podman image exists "$plain"; then
  podman import --change 'CMD ["python3"]' "$tarball" "$plain" >/dev/null
fi
# This machine reaches PyPI through an egress proxy with its own CA: the proof's base
# trusts it (system store and pip), as the host does. The base and the image built on it
# are for this proof only; a release builds on the digest-pinned python image.
ca_dir=/usr/local/share/ca-certificates
stamp=$(cat "$ca_dir"/*.crt 2>/dev/null | sha256sum | cut -c1-12)
image=localhost/paincare-base:bookworm-$stamp
if ! podman image exists "$image"; then
  ctx=$(mktemp -d)
  cp "$ca_dir"/*.crt "$ctx/" 2>/dev/null || true
  cat >"$ctx/Containerfile" <<'CF'
FROM localhost/paincare-base:bookworm-plain
COPY . /usr/local/share/ca-certificates/
RUN rm -f /usr/local/share/ca-certificates/Containerfile && update-ca-certificates >/dev/null \
 && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf
CF
  podman --runtime runc build --ulimit nproc=1000 --network host -q -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
fi
echo "$image"
