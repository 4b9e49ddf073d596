#!/bin/bash
# One-time, idempotent setup of the qemu soft-RoCE lab on a Debian bookworm host (root).
# Needs Debian's mirror. Builds into $NEXIO_LAB_DIR (default /var/tmp/nexio-lab):
#   kernel/    the unpacked linux-image .deb (never installed on the host)
#   vmlinux    uncompressed kernel, booted through qemu's PVH entry (~3 s faster than vmlinuz under TCG)
#   initrd.gz  busybox + the modules rxe/9p/virtio/overlay need + testbed/guest/init
# Re-running is cheap: packages, kernel and initramfs are only redone when missing or stale.
set -euo pipefail
TB=$(cd "$(dirname "$0")" && pwd)
LAB=${NEXIO_LAB_DIR:-/var/tmp/nexio-lab}
mkdir -p "$LAB"
"$TB/provision/packages.sh" qemu-system-x86 busybox-static kmod cpio xz-utils
cd "$LAB"
# The kernel linux-image-amd64 points at (6.1.0-NN-amd64): it ships rdma_rxe.
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$KPKG" ] || { apt-get update -qq; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); }
[ -n "$KPKG" ] || { echo "setup: cannot resolve linux-image-amd64" >&2; exit 1; }
DEB=$(ls ${KPKG}_*.deb 2>/dev/null | head -1 || true)
if [ -z "$DEB" ]; then
  echo "setup: downloading $KPKG"
  # stale package lists name a version the mirror no longer has: refresh them and resolve again
  if ! apt-get download -qq -o APT::Sandbox::User=root "$KPKG"; then
    echo "setup: download of $KPKG failed; apt-get update and resolving again"
    apt-get update -qq
    KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    apt-get download -qq -o APT::Sandbox::User=root "$KPKG"
  fi
  DEB=$(ls ${KPKG}_*.deb | head -1)
fi
# Rebuild the initramfs only when the kernel or our init/builder changed.
stamp="$DEB $(md5sum "$TB/guest/init" "$TB/lib/build-initrd.sh" | awk '{printf "%s ", $1}')"
if [ -f initrd.gz ] && [ -f vmlinux ] && [ "$(cat .stamp 2>/dev/null)" = "$stamp" ]; then
  echo "setup: lab ready in $LAB ($(cat kernel.version))"
else
  "$TB/lib/build-initrd.sh" "$LAB" "$LAB/$DEB" "$TB/guest/init"
  echo "$stamp" > .stamp
fi
