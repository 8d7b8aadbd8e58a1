#!/bin/busybox sh
# lab's initramfs: load the drivers needed to mount the root disk (for kernels
# that keep them in modules, like Debian's), then switch to lab-init.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do
    insmod "/modules/$m" 2>/dev/null
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "lab-initramfs: cannot mount /dev/vda" > /dev/kmsg
    exec sh
fi
init=/sbin/lab-init
for arg in $(cat /proc/cmdline); do
    case "$arg" in init=*) init="${arg#init=}" ;; esac
done
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$init"
