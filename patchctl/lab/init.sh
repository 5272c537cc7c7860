#!/bin/sh
# patchctl-lab-init: PID 1 of one patchctl lab host, started by the lab supervisor through
#   unshare --mount --pid --uts --ipc --fork --kill-child --propagation private
# Arguments: LOWER UPPER WORK ROOT HOSTNAME
# Everything mounted here lives in this host's private mount namespace and vanishes with it.
set -eu
lower=$1 upper=$2 work=$3 root=$4 name=$5

mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
hostname "$name"

# A fresh /proc for this PID namespace; /proc/sys read-only.
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
# dnf needs-restarting takes the boot time from the mtime of /proc/1, which proc sets when that
# inode is first made: make it now and hold it (fd 9) for the life of this boot.
exec 9<"$root/proc/1/stat"

# A fresh /run every boot: /run/reboot-required vanishes on reboot, as on a real host.
mount -t tmpfs -o nosuid,nodev,mode=755,size=16m tmpfs "$root/run"
mkdir -p "$root/run/sshd" "$root/run/lock" "$root/run/patchctl-lab"
chmod 0755 "$root/run/sshd"
cat /proc/sys/kernel/random/uuid > "$root/run/patchctl-lab/boot_id"
mount --bind "$root/run/patchctl-lab/boot_id" "$root/proc/sys/kernel/random/boot_id"

# A minimal /dev of our own (never the real one: it holds the real disks).
mount -t tmpfs -o nosuid,mode=755,size=256k tmpfs "$root/dev"
for spec in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    set -- $spec
    mknod -m 666 "$root/dev/$1" c "$2" "$3"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o nosuid,nodev,size=16m tmpfs "$root/dev/shm"

rm -f "$root/var/lib/patchctl-lab/power"
chroot "$root" /usr/sbin/sshd -D -e </dev/null 9<&- &

stopping=0
trap 'stopping=1' TERM INT HUP
# Stay up even if sshd alone dies (a host whose sshd is killed is still "on").
while [ "$stopping" = 0 ]; do
    sleep 3600 &
    wait $! || true
done
exit 0
