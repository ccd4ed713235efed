#!/bin/sh
# Run by busybox acpid on an ACPI power-button press: ask init for a clean power-off.
exec /sbin/poweroff
