#!/bin/bash
# usage: build-initrd.sh LAB_DIR KERNEL_DEB INIT
# Unpacks the kernel .deb, extracts an uncompressed vmlinux, and builds a tiny initramfs:
# busybox-static, the .ko files for virtio/9p/overlay/rxe (dependencies resolved by modprobe), and INIT.
set -euo pipefail
LAB=$1; DEB=$2; INIT=$3
cd "$LAB"
K=$(dpkg-deb -f "$DEB" Package); K=${K#linux-image-}          # e.g. 6.1.0-56-amd64
[ -d kernel/lib/modules/$K ] || { rm -rf kernel; mkdir -p kernel; dpkg -x "$DEB" kernel; }
[ -f kernel/lib/modules/$K/modules.dep ] || depmod -b kernel "$K"
# vmlinuz is a bzImage wrapping an XZ stream: cut at the XZ magic, decompress to an ELF that
# qemu boots via the PVH note. xz complains about the trailing data; that is expected.
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "kernel/boot/vmlinuz-$K" | head -1 | cut -d: -f1)
tail -c +$((off+1)) "kernel/boot/vmlinuz-$K" | xz -dcq > vmlinux.tmp 2>/dev/null || true
[ "$(head -c4 vmlinux.tmp | od -An -c | tr -d ' ')" = '177ELF' ] || { echo "build-initrd: vmlinux extraction failed" >&2; exit 1; }
mv vmlinux.tmp vmlinux
R=$LAB/initrd.d; rm -rf "$R"; mkdir -p "$R"/{bin,mods,dev,proc,sys,host,ovl,newroot}
cp /bin/busybox "$R/bin/busybox"
: > "$R/mods/order"
# crc32_generic is loaded on demand by rdma_rxe: without it `rdma link add` fails with ENOENT.
for m in virtio_pci virtio_net 9pnet_virtio 9p overlay dummy crc32_generic crc32_pclmul rdma_rxe rdma_ucm; do
  modprobe -d kernel -S "$K" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  b=$(basename "$ko"); cp "$ko" "$R/mods/$b"; echo "$b" >> "$R/mods/order"
done
cp "$INIT" "$R/init"; chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > initrd.gz.tmp && mv initrd.gz.tmp initrd.gz
rm -rf "$R"
echo "$K" > kernel.version
echo "build-initrd: initrd $(du -h initrd.gz | cut -f1), kernel $K"
