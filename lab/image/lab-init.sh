#!/bin/sh
# lab's guest init (PID 1): mount, bring up eth0, start sshd, then load the
# remaining drivers and mark the guest ready (/run/lab-ready). Replaces
# systemd so the guest reaches SSH in seconds under TCG. Shell builtins where
# possible: every exec costs under TCG.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "lab-init: $*" > /dev/kmsg; }
mounted() { while read -r _ mp _; do [ "$mp" = "$1" ] && return 0; done < /proc/mounts; return 1; }

[ -e /proc/self ] || mount -t proc proc /proc
mounted /sys || mount -t sysfs sysfs /sys
mounted /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -o remount,rw /
say "filesystems mounted"

# The booted kernel's modules come on a read-only disk (see lab.image.modules).
read -r rel < /proc/sys/kernel/osrelease
if [ -b /dev/vdb ]; then
    mkdir -p "/lib/modules/$rel"
    mount -t ext4 -o ro,noload /dev/vdb "/lib/modules/$rel" && say "modules for $rel mounted"
fi
[ -e /sys/class/net/eth0 ] || modprobe -q virtio_net
hostname lab-guest
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
mkdir -p /run/sshd
/usr/sbin/sshd -E /var/log/sshd.log && say "sshd started"

# Not needed for SSH: load after sshd is up, then say the guest is ready.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t configfs configfs /sys/kernel/config 2>/dev/null
modprobe -qa virtio_rng nvme crc32c_generic 2>/dev/null
i=0
while [ ! -e /dev/nvme0n1 ] && [ -e /sys/bus/pci/drivers/nvme ] && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i+1))
done
: > /run/lab-ready
say "ready"

# Stay PID 1 and reap orphans.
if [ -x /usr/bin/tini ]; then
    exec /usr/bin/tini -s -- /bin/sh -c 'while :; do sleep 3600; done'
fi
while :; do sleep 3600; done
