#!/usr/bin/env bash
# Boots a built Corral image the way the VMM does (-M microvm, TCG, direct kernel boot, fresh
# qcow2 overlay), waits for a console line, presses the ACPI power button over QMP and waits for
# QEMU to exit. Prints the timings. A manual check; the Rust tests do the same.
#
#   crates/images/boot-check.sh IMAGE_DIR [MARKER] [TIMEOUT_S]
#   e.g. crates/images/boot-check.sh /var/cache/corral/images/corral-minimal-* 'corral-minimal: init ready'
set -euo pipefail
img=$(cd "$1" && pwd)
marker=${2:-corral-minimal: init ready}
timeout_s=${3:-60}
cmdline=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cmdline"])' "$img/manifest.json")
khz=$(cat /sys/devices/system/cpu/cpu0/tsc_freq_khz 2>/dev/null || awk -F: '/^cpu MHz/ {printf "%d\n", $2*1000; exit}' /proc/cpuinfo)
dir=$(mktemp -d)
trap 'kill "$qpid" 2>/dev/null || true; rm -rf "$dir"' EXIT
qemu-img create -q -f qcow2 -b "$img/root.qcow2" -F qcow2 "$dir/overlay.qcow2"
now() { date +%s.%N; }
t0=$(now)
qemu-system-x86_64 -name boot-check -M microvm,rtc=on -accel tcg -cpu max -m 512 -smp 1 \
  -nodefaults -no-user-config -nographic \
  -kernel "$img/vmlinux" -initrd "$img/initrd.img" \
  -append "console=ttyS0 tsc_early_khz=$khz tsc=reliable $cmdline" \
  -drive id=root,file="$dir/overlay.qcow2",format=qcow2,if=none -device virtio-blk-device,drive=root \
  -serial file:"$dir/console.log" -qmp unix:"$dir/qmp.sock",server=on,wait=off &
qpid=$!
deadline=$(( $(date +%s) + timeout_s ))
until grep -qF "$marker" "$dir/console.log" 2>/dev/null; do
  kill -0 "$qpid" 2>/dev/null || { echo "QEMU exited before the marker"; cat "$dir/console.log"; exit 1; }
  [ "$(date +%s)" -lt "$deadline" ] || { echo "no marker within ${timeout_s}s"; cat "$dir/console.log"; exit 1; }
  sleep 0.05
done
echo "marker \"$marker\" after $(echo "$(now) - $t0" | bc) s"
t1=$(now)
python3 - "$dir/qmp.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", "system_powerdown"):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
    while True:
        line = f.readline()
        if '"return"' in line or '"error"' in line:
            break
PY
deadline=$(( $(date +%s) + timeout_s ))
while kill -0 "$qpid" 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "QEMU still running ${timeout_s}s after system_powerdown"; tail -20 "$dir/console.log"; exit 1; }
  sleep 0.05
done
rc=0; wait "$qpid" || rc=$?
echo "QEMU exited (status $rc) $(echo "$(now) - $t1" | bc) s after system_powerdown"
tail -5 "$dir/console.log"
