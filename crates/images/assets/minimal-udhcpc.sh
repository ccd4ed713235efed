#!/bin/sh
# corral-minimal's busybox udhcpc event script (/etc/udhcpc/default.script). udhcpc runs it with
# the event in $1 and the lease in the environment: $interface, $ip, $mask (prefix length) or
# $subnet, $router, $mtu (option 26: udhcpc must be run with `-O mtu`), $dns, $domain, $search,
# $hostname. It configures the interface and records the lease under /run/corral-net/ for init.
[ -n "$1" ] || exit 1
state=/run/corral-net
mkdir -p "$state"

case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set dev "$interface" up
        rm -f "$state/$interface.ip"
        ;;
    bound|renew)
        [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
        prefix="$mask"
        [ -n "$prefix" ] || prefix="$(ipcalc -p "$ip" "${subnet:-255.255.255.0}" | sed 's/.*=//')"
        old="$(cat "$state/$interface.ip" 2>/dev/null)"
        if [ "$1" = bound ] || [ "$old" != "$ip" ]; then
            ip -4 addr flush dev "$interface"
            if [ -n "$broadcast" ]; then
                ip -4 addr add "$ip/$prefix" broadcast "$broadcast" dev "$interface"
            else
                ip -4 addr add "$ip/$prefix" dev "$interface"
            fi
        fi
        if [ -n "$router" ]; then
            for r in $router; do
                ip route replace default via "$r" dev "$interface" && break
            done
        fi
        if [ -n "$dns" ]; then
            {
                if [ -n "$search" ]; then echo "search $search"; elif [ -n "$domain" ]; then echo "search $domain"; fi
                for s in $dns; do echo "nameserver $s"; done
            } > /etc/resolv.conf.dhcp && mv /etc/resolv.conf.dhcp /etc/resolv.conf
        fi
        # The metadata's local-hostname wins once init has set it.
        if [ -n "$hostname" ] && [ ! -e /run/corral-init/hostname-from-metadata ]; then
            hostname "$hostname"
        fi
        echo "$ip" > "$state/$interface.ip"
        echo "corral-minimal: dhcp $1 $interface $ip/$prefix router ${router:-none} mtu ${mtu:-default} dns ${dns:-none}" > /dev/console
        ;;
    leasefail|nak)
        ;;
esac
exit 0
