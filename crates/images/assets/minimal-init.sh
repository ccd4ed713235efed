#!/bin/sh
# corral-minimal's /sbin/init (PID 1), run by busybox sh. Mounts the API file systems, turns an
# ACPI power-button press (QMP system_powerdown) into a clean power-off, configures the network
# by DHCP, reads the EC2 instance metadata (key pair, hostname, user-data), starts dropbear,
# prints the readiness marker and keeps a getty on the serial console.
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

acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid

# ---- Network, instance metadata, SSH, user-data ----------------------------------------------
# Console markers, in this order (each only when it applies; `init ready` always, last):
#   corral-minimal: network up <ip>
#   corral-minimal: metadata ok <instance-id>
#   corral-minimal: sshd listening on port 22
#   corral-minimal: user-data done rc=<n>
#   corral-minimal: init ready
# Without eth0 all of it is skipped at once; with eth0 but no lease or no metadata service it
# gives up after NET_BUDGET seconds (udhcpc keeps trying in the background) and still boots.
IMDS=169.254.169.254
NET_BUDGET=30
STATE=/var/lib/corral-init
RUN=/run/corral-init
mkdir -p "$RUN" "$STATE/instances"
imds_token=
instance_id=

say() {
    echo "corral-minimal: $*" > /dev/console
}

# IMDSv2 session token: busybox wget cannot send a PUT, so the request is written by hand to
# nc. Prints the token; fails on no answer or a status other than 200.
imds_put_token() {
    resp="$(printf 'PUT /latest/api/token HTTP/1.0\r\nHost: %s\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$IMDS" \
        | timeout 5 nc -w 3 "$IMDS" 80 2>/dev/null | tr -d '\r')"
    case "$resp" in
        "HTTP/1."?" 200"*) ;;
        *) return 1 ;;
    esac
    token="$(printf '%s\n' "$resp" | sed '1,/^$/d')"
    [ -n "$token" ] || return 1
    printf '%s' "$token"
}

# imds_get PATH FILE: GET http://169.254.169.254/latest/PATH into FILE, with the token when we
# have one. Fails (and leaves no FILE) on any error or a status other than 200.
imds_get() {
    if [ -n "$imds_token" ]; then
        timeout 10 wget -q -O "$2" --header "X-aws-ec2-metadata-token: $imds_token" "http://$IMDS/latest/$1" 2>/dev/null
    else
        timeout 10 wget -q -O "$2" "http://$IMDS/latest/$1" 2>/dev/null
    fi || { rm -f "$2"; return 1; }
}

corral_dhcp() {
    ip link set dev eth0 up
    # Foreground until a lease (then udhcpc daemonizes and renews it), or backgrounds after
    # about 20 s of unanswered discovers and keeps trying.
    udhcpc -i eth0 -s /etc/udhcpc/default.script -p /run/udhcpc.eth0.pid -O mtu -O search \
        -t 10 -T 2 -A 5 -b > /dev/console 2>&1
    net_ip="$(cat /run/corral-net/eth0.ip 2>/dev/null)"
    if [ -z "$net_ip" ]; then
        say "network: no DHCP lease on eth0 yet (udhcpc keeps trying in the background)"
        return 1
    fi
    say "network up $net_ip"
}

corral_metadata() {
    deadline="$1"
    while :; do
        imds_token="$(imds_put_token)" || imds_token=
        if imds_get meta-data/instance-id "$RUN/instance-id"; then
            instance_id="$(cat "$RUN/instance-id")"
            case "$instance_id" in
                ""|*[!A-Za-z0-9._-]*) say "metadata: unusable instance-id '$instance_id'"; instance_id= ;;
                *) break ;;
            esac
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "metadata: no answer from http://$IMDS, continuing without it"
            return 1
        fi
        sleep 1
    done
    if [ -n "$imds_token" ]; then say "metadata: IMDSv2 session token"; else say "metadata: IMDSv1 (token PUT failed)"; fi
    echo "$instance_id" > "$STATE/instance-id"
    say "metadata ok $instance_id"

    # Hostname: local-hostname's first label, the full name in /etc/hosts (as cloud-init does).
    if imds_get meta-data/local-hostname "$RUN/local-hostname"; then
        fqdn="$(head -n 1 "$RUN/local-hostname" | tr -d ' \t\r')"
        short="${fqdn%%.*}"
        if [ -n "$short" ]; then
            : > "$RUN/hostname-from-metadata"
            hostname "$short"
            echo "$short" > /etc/hostname
            {
                printf '127.0.0.1\tlocalhost\n'
                if [ "$fqdn" != "$short" ]; then printf '127.0.1.1\t%s %s\n' "$fqdn" "$short"; else printf '127.0.1.1\t%s\n' "$short"; fi
                printf '::1\tlocalhost ip6-localhost ip6-loopback\n'
            } > /etc/hosts
        fi
    fi

    # Key pairs: every public-keys/<n>/openssh-key into admin's authorized_keys.
    : > "$RUN/authorized_keys"
    indexes=
    if imds_get meta-data/public-keys/ "$RUN/public-keys"; then
        indexes="$(sed -n 's/^\([0-9][0-9]*\)=.*/\1/p' "$RUN/public-keys")"
    fi
    for n in ${indexes:-0}; do
        if imds_get "meta-data/public-keys/$n/openssh-key" "$RUN/key"; then
            grep -v '^[[:space:]]*$' "$RUN/key" >> "$RUN/authorized_keys"
        fi
    done
    if [ -s "$RUN/authorized_keys" ]; then
        mkdir -p /home/admin/.ssh
        cp "$RUN/authorized_keys" /home/admin/.ssh/authorized_keys
        chown 1000:1000 /home/admin /home/admin/.ssh /home/admin/.ssh/authorized_keys
        chmod 700 /home/admin/.ssh
        chmod 600 /home/admin/.ssh/authorized_keys
        say "metadata: $(grep -c . "$RUN/authorized_keys") public key(s) installed for admin"
    fi
    return 0
}

# dropbear with an ed25519 host key made on first boot; key logins only, no root login. Waits
# (bounded) until port 22 listens, so `init ready` means SSH can be reached.
corral_sshd() {
    key=/etc/dropbear/dropbear_ed25519_host_key
    mkdir -p /etc/dropbear
    chmod 700 /etc/dropbear
    if [ ! -s "$key" ]; then
        rm -f "$key"
        dropbearkey -t ed25519 -f "$key" > /dev/null 2>&1 || { say "sshd: cannot generate a host key"; return 1; }
    fi
    {
        echo "-----BEGIN SSH HOST KEY KEYS-----"
        dropbearkey -y -f "$key" 2>/dev/null | grep '^ssh-'
        echo "-----END SSH HOST KEY KEYS-----"
    } > /dev/console
    dropbear -F -E -s -w -r "$key" -p 22 -P /run/dropbear.pid >> /var/log/dropbear.log 2>&1 &
    tries=0
    until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$2 ~ /:0016$/ && $4 == "0A" { found = 1 } END { exit !found }'; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ]; then
            say "sshd: dropbear is not listening on port 22 (see /var/log/dropbear.log)"
            return 1
        fi
        sleep 0.05
    done
    say "sshd listening on port 22"
}

# User-data runs once per instance id (cloud-init's per-instance semantics): when it starts
# with `#!` it is executed as root, its output appended to /var/log/user-data.log and copied
# to the console. $STATE/instances/<id>/user-data.started gates the run (written before it);
# user-data.rc holds its exit status.
corral_user_data() {
    dir="$STATE/instances/$instance_id"
    mkdir -p "$dir"
    if [ -e "$dir/user-data.started" ]; then
        say "user-data already ran for $instance_id (rc=$(cat "$dir/user-data.rc" 2>/dev/null || echo unknown)), not running it again"
        return 0
    fi
    if ! imds_get user-data "$dir/user-data"; then
        say "user-data: none"
        return 0
    fi
    : > "$dir/user-data.started"
    if [ "$(head -c 2 "$dir/user-data")" != "#!" ]; then
        echo skipped > "$dir/user-data.rc"
        say "user-data: not a script (no #!), skipped"
        return 0
    fi
    chmod 700 "$dir/user-data"
    touch /var/log/user-data.log
    chmod 644 /var/log/user-data.log
    sync
    say "user-data: running"
    fifo="$RUN/user-data.out"
    rm -f "$fifo"
    mkfifo "$fifo"
    # tee is not waited for: daemons the script starts may keep the pipe open.
    tee -a /var/log/user-data.log < "$fifo" > /dev/console &
    (cd / && exec "$dir/user-data") > "$fifo" 2>&1 < /dev/null
    rc=$?
    echo "$rc" > "$dir/user-data.rc"
    sync
    say "user-data done rc=$rc"
}

corral_network_setup() {
    if [ ! -e /sys/class/net/eth0 ]; then
        say "no network interface (eth0): skipping network, metadata and sshd"
        return 0
    fi
    deadline=$(($(date +%s) + NET_BUDGET))
    net_ok=
    corral_dhcp && net_ok=1
    md_ok=
    [ -n "$net_ok" ] && corral_metadata "$deadline" && md_ok=1
    corral_sshd
    [ -n "$md_ok" ] && corral_user_data
    return 0
}
corral_network_setup
# ---------------------------------------------------------------------------------------------

echo "corral-minimal: init ready" > /dev/console

while :; do
    getty -L 115200 ttyS0 vt100 &
    wait $!
    sleep 1 &
    wait $!
done
