#!/bin/sh
# Corral's initramfs /init: load the virtio drivers (built as modules in Debian kernels), mount
# the root disk and hand over to its init. Kept tiny: under TCG every command costs time.
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys

root=/dev/vda
fstype=ext4
mode=rw
init=/sbin/init
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        root=*) root="${arg#root=}" ;;
        rootfstype=*) fstype="${arg#rootfstype=}" ;;
        init=*) init="${arg#init=}" ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
    esac
done

# /etc/modules lists the modules to load, dependencies first (written at build time).
while read -r mod; do
    [ -n "$mod" ] && insmod "/lib/modules/$mod" 2>/dev/null
done < /etc/modules

# Wait (bounded) for the root device: virtio probing finishes asynchronously.
tries=0
while :; do
    case "$root" in
        LABEL=*|UUID=*) dev="$(findfs "$root" 2>/dev/null)" ;;
        *) dev="$root" ;;
    esac
    [ -n "$dev" ] && [ -b "$dev" ] && break
    tries=$((tries + 1))
    if [ "$tries" -gt 400 ]; then
        echo "corral-initramfs: root device $root did not appear; dropping to a shell" > /dev/console
        exec sh < /dev/console > /dev/console 2>&1
    fi
    sleep 0.05
done

if ! mount -t "$fstype" -o "$mode" "$dev" /newroot; then
    echo "corral-initramfs: cannot mount $dev ($fstype, $mode); dropping to a shell" > /dev/console
    exec sh < /dev/console > /dev/console 2>&1
fi
echo "corral-initramfs: mounted $dev on /, starting $init" > /dev/console

mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$init"
