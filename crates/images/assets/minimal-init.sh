#!/bin/sh
# corral-minimal's /sbin/init (PID 1), run by busybox sh. Mounts the API file systems, prints
# the readiness marker, turns an ACPI power-button press (QMP system_powerdown) into a clean
# power-off, and keeps a getty on the serial console.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
umask 022

# The initramfs moved its devtmpfs here; proc and sys are ours to mount.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
grep -q '^devtmpfs /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
hostname -F /etc/hostname
ip link set lo up

# Clean shutdown: busybox poweroff/halt/reboot (without -f) signal PID 1 (USR2/USR1/TERM),
# and acpid runs /etc/acpi/PWRF/00000080 (which calls poweroff) on a power-button press.
corral_shutdown() {
    echo "corral-minimal: $1" > /dev/console
    trap '' USR1 USR2 TERM
    kill -TERM -1 2>/dev/null
    sync
    umount -a -r 2>/dev/null
    mount -o remount,ro / 2>/dev/null
    sync
    if [ "$1" = reboot ]; then reboot -f; else poweroff -f; fi
}
trap 'corral_shutdown poweroff' USR2
trap 'corral_shutdown poweroff' USR1
trap 'corral_shutdown reboot' TERM

# ---- HOOK: network configuration ------------------------------------------------------------
# Not implemented yet. A later issue fills this in: bring up the NIC (virtio_net is on the disk
# under /lib/modules), run udhcpc, then fetch the instance metadata (hostname, public keys,
# user-data) from http://169.254.169.254.
corral_network_setup() {
    :
}
corral_network_setup
# ---------------------------------------------------------------------------------------------

acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid

echo "corral-minimal: init ready" > /dev/console

while :; do
    getty -L 115200 ttyS0 vt100 &
    wait $!
    sleep 1 &
    wait $!
done
