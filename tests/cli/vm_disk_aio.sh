#!/usr/bin/env bash
# virtio-blk's backend choice (--disk FILE,aio=...) on the tiny guest
# (tests/cli/tinyguest.py; no disk I/O happens, the device is only set
# up): aio=uring and aio=thread are what they say; aio=auto is the thread
# with cache=writeback and io_uring with cache=none; when a seccomp
# filter makes io_uring_setup fail with ENOSYS, aio=auto falls back with
# one line while aio=uring fails with one line. Oracles: the exit status,
# stderr, and /proc/PID/fd (the kernel names an io_uring fd).
# cache=none needs O_DIRECT: the image lives under /var/tmp (/tmp may be
# tmpfs, without O_DIRECT before Linux 6.6).
. "$(dirname "$0")/../lib.sh"
t_tiny_kvm "disk aio tests"
dir=$(mktemp -d /tmp/kvmlab-aio.XXXXXX)
t_defer "rm -rf '$dir'"
$TINY "$dir/ok.bz" ok
$TINY "$dir/hang.bz" hang
ddir=$(mktemp -d /var/tmp/kvmlab-aio.XXXXXX)
t_defer "rm -rf '$ddir'"
truncate -s 1M "$ddir/d.img"
direct=1
dd if=/dev/zero of="$ddir/d.img" bs=4096 count=1 oflag=direct conv=notrunc status=none 2>/dev/null || direct=

# noiou CMD...: CMD with io_uring_setup failing ENOSYS (seccomp, this
# process tree only; x86-64 syscall numbers)
cat >"$dir/noiou.c" <<'C'
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
int main(int argc, char **argv)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = { sizeof(f) / sizeof(f[0]), f };
	if (argc < 2 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p))
		return 125;
	execvp(argv[1], argv + 1);
	return 127;
}
C
cc -O2 -o "$dir/noiou" "$dir/noiou.c" || { t_fail "seccomp helper builds"; t_finish; }

run() { # run PREFIX... -- ARGS: sets rc, err
	local pre=()
	while [ "$1" != -- ]; do pre+=("$1"); shift; done
	shift
	timeout -k 2 30 "${pre[@]}" "$VM" run --initrd none --console none "$@" </dev/null >/dev/null 2>"$dir/err"
	rc=$?
	err=$(cat "$dir/err")
}

for aio in auto uring thread; do
	run -- --kernel "$dir/ok.bz" --disk "$ddir/d.img,aio=$aio"
	[ $rc = 0 ] && [ -z "$err" ] && t_ok "aio=$aio: boots, nothing on stderr" ||
		t_fail "aio=$aio: boots, nothing on stderr" "exit $rc: $err"
done

# the kernel's view of a running VMM: an io_uring fd with aio=uring and
# with aio=auto on cache=none, none with aio=thread and aio=auto on
# writeback (the default)
modes="uring:1 thread:0 auto:0"
[ -n "$direct" ] && modes="$modes auto,cache=none:1 thread,cache=none:0"
for m in $modes; do
	aio=${m%:*} want=${m#*:}
	timeout -k 2 30 "$VM" run --initrd none --console none --kernel "$dir/hang.bz" \
		--disk "$ddir/d.img,aio=$aio" </dev/null >/dev/null 2>"$dir/err" &
	pid=$!
	n=0
	for _ in $(seq 50); do
		vm=$(pgrep -P $pid -x kvmlab-vm || echo $pid)
		[ -d /proc/$vm/task ] && [ "$(ls /proc/$vm/task | wc -l)" -ge 2 ] && break
		sleep 0.1
	done
	sleep 0.3
	n=$(ls -l /proc/$vm/fd 2>/dev/null | grep -c 'io_uring')
	kill $pid 2>/dev/null; wait $pid 2>/dev/null
	[ "$n" = $want ] && t_ok "aio=$aio: $n io_uring fd in /proc/PID/fd" ||
		t_fail "aio=$aio: $want io_uring fd in /proc/PID/fd" "found $n"
done

if [ -n "$direct" ]; then
	run "$dir/noiou" -- --kernel "$dir/ok.bz" --disk "$ddir/d.img,cache=none"
	if [ $rc = 0 ] && [ "$(wc -l <"$dir/err")" = 1 ] &&
	   grep -q "^kvmlab-vm: virtio-blk: $ddir/d.img: io_uring unavailable (Function not implemented), using the I/O thread$" "$dir/err"; then
		t_ok "no io_uring (seccomp ENOSYS), aio=auto, cache=none: one line, the thread, boots"
	else
		t_fail "no io_uring (seccomp ENOSYS), aio=auto, cache=none: one line, the thread, boots" "exit $rc: $err"
	fi
else
	t_skip "no io_uring, aio=auto, cache=none" "no O_DIRECT under /var/tmp"
fi
run "$dir/noiou" -- --kernel "$dir/ok.bz" --disk "$ddir/d.img"
[ $rc = 0 ] && [ -z "$err" ] && t_ok "no io_uring, aio=auto on writeback (the thread anyway): boots, nothing said" ||
	t_fail "no io_uring, aio=auto on writeback: boots, nothing said" "exit $rc: $err"
run "$dir/noiou" -- --kernel "$dir/ok.bz" --disk "$ddir/d.img,aio=uring"
if [ $rc = 1 ] && [ "$(wc -l <"$dir/err")" = 1 ] &&
   grep -q "^kvmlab-vm: virtio-blk: $ddir/d.img: aio=uring: io_uring unavailable: Function not implemented$" "$dir/err"; then
	t_ok "no io_uring, aio=uring: exit 1 with one line"
else
	t_fail "no io_uring, aio=uring: exit 1 with one line" "exit $rc: $err"
fi
run "$dir/noiou" -- --kernel "$dir/ok.bz" --disk "$ddir/d.img,aio=thread"
[ $rc = 0 ] && [ -z "$err" ] && t_ok "no io_uring, aio=thread: boots, nothing said" ||
	t_fail "no io_uring, aio=thread: boots, nothing said" "exit $rc: $err"
t_finish
