#!/usr/bin/env bash
# kvmlab-vm run with bad input: each case must exit non-zero with one
# clear line that names the object and the reason, before anything runs
# (no guest output, no process left behind). Needs no KVM: every case
# fails in host-side validation, which comes before /dev/kvm is opened.
. "$(dirname "$0")/../lib.sh"
VM=$KVMLAB_VM
TINY="python3 $T_ROOT/tests/cli/tinyguest.py"
[ -x "$VM" ] || { t_fail "kvmlab-vm built" "$VM missing"; t_finish; }

dir=$(mktemp -d /tmp/kvmlab-cli.XXXXXX)
t_defer "rm -rf '$dir'"

# expect NAME RC REGEX ARGS...: exit status RC, first stderr line matches
# REGEX (extended), at most 2 stderr lines (message + usage hint), no
# stdout, no process running our unique marker path afterwards.
expect() {
	local name=$1 want=$2 re=$3; shift 3
	local rc lines first
	timeout -k 2 20 "$VM" run "$@" >"$dir/out" 2>"$dir/err" </dev/null
	rc=$?
	lines=$(wc -l <"$dir/err")
	first=$(head -n1 "$dir/err")
	if [ "$rc" != "$want" ]; then
		t_fail "$name" "exit $rc, want $want; stderr: $first"
	elif ! grep -Eq -- "$re" <<<"$first"; then
		t_fail "$name" "stderr '$first' does not match /$re/"
	elif [ "$want" = 1 ] && [ "$lines" != 1 ]; then
		t_fail "$name" "want one stderr line, got $lines"
	elif [ -s "$dir/out" ]; then
		t_fail "$name" "guest output appeared: $(head -c 80 "$dir/out")"
	elif pgrep -f "$dir/" >/dev/null; then
		t_fail "$name" "a process is still running"
	else
		t_ok "$name"
	fi
}

$TINY "$dir/good.bz" ok
head -c 8192 /dev/urandom >"$dir/random.bin"
$TINY "$dir/trunc.bz" ok --truncate 1500
$TINY "$dir/old.bz" ok --version 0x0202
$TINY "$dir/nohdrs.bz" ok --no-hdrs
$TINY "$dir/short-cmdline.bz" ok --cmdline-size 64
truncate -s 300M "$dir/huge.initrd"   # sparse: costs no disk
mkdir "$dir/adir"
host_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)

expect "missing kernel file" 1 "boot: $dir/nope\.bz: No such file or directory" \
	--kernel "$dir/nope.bz" --initrd none
expect "kernel is a directory" 1 "$dir/adir: not a regular file" \
	--kernel "$dir/adir" --initrd none
expect "missing initrd file" 1 "initrd: $dir/nope\.img: No such file or directory" \
	--kernel "$dir/good.bz" --initrd "$dir/nope.img"
expect "not a bzImage (random bytes)" 1 "boot: $dir/random\.bin: not a bzImage" \
	--kernel "$dir/random.bin" --initrd none
expect "not a bzImage (no HdrS)" 1 "boot: $dir/nohdrs\.bz: not a bzImage .*HdrS" \
	--kernel "$dir/nohdrs.bz" --initrd none
expect "truncated bzImage" 1 "boot: $dir/trunc\.bz: truncated" \
	--kernel "$dir/trunc.bz" --initrd none
expect "boot protocol too old" 1 "boot: $dir/old\.bz: bzImage too old \(protocol 2\.02, need 2\.06\)" \
	--kernel "$dir/old.bz" --initrd none
long=$(printf 'x%.0s' $(seq 1 100))
expect "cmdline longer than cmdline_size" 1 "cmdline: 100 bytes, kernel allows at most 64" \
	--kernel "$dir/short-cmdline.bz" --initrd none --cmdline "$long"
# 40 bytes the user wrote, 35 virtio-mmio adds for one device: over 64
expect "cmdline too long with the virtio-mmio entries" 1 \
	"cmdline: 75 bytes, kernel allows at most 64 \(35 bytes of it are the virtio_mmio.device= entries" \
	--kernel "$dir/short-cmdline.bz" --initrd none --cmdline "${long:0:40}" --rng --virtio-transport mmio
expect "--mem 0" 1 "--mem: must be above 0" \
	--kernel "$dir/good.bz" --initrd none --mem 0
expect "--mem above host RAM" 1 "--mem [0-9]+ MiB: more than host memory \($host_mib MiB\)" \
	--kernel "$dir/good.bz" --initrd none --mem $((host_mib + 1024))M
expect "--cpus 0" 1 "--cpus 0: must be 1\.\.255" \
	--kernel "$dir/good.bz" --initrd none --cpus 0
expect "--cpus 256" 1 "--cpus 256: must be 1\.\.255" \
	--kernel "$dir/good.bz" --initrd none --cpus 256
expect "initrd larger than guest RAM" 1 "initrd: $dir/huge\.initrd \(300 MiB\) does not fit in guest memory" \
	--kernel "$dir/good.bz" --initrd "$dir/huge.initrd" --mem 128M
expect "unknown option" 2 "run: unknown option '--frobnicate' \(try 'kvmlab-vm run --help'\)" \
	--kernel "$dir/good.bz" --frobnicate
expect "mistyped option: did you mean" 2 "unknown option '--memm'; did you mean '--mem'\?" \
	--kernel "$dir/good.bz" --memm 1G
expect "option without its value" 2 "run: --mem needs a value" --kernel "$dir/good.bz" --mem
# a bad value is exit 1 like any other bad input (--cpus 0 and --mem 1x alike)
expect "bad --mem syntax" 1 "--mem 12Q: not a size" --kernel "$dir/good.bz" --mem 12Q
expect "bad --mem suffix" 1 "--mem 1x: not a size" --kernel "$dir/good.bz" --mem 1x
expect "bad --cpus syntax" 1 "--cpus two: not a number" --kernel "$dir/good.bz" --cpus two
expect "bad --console" 1 "--console tty: want stdio, file:PATH, pty or none" \
	--kernel "$dir/good.bz" --console tty
expect "--tap on a missing interface" 1 "--tap kl-nonexist0: no such interface" \
	--kernel "$dir/good.bz" --tap kl-nonexist0
expect "--queues 0" 1 "--queues 0: want 1\.\.8" --kernel "$dir/good.bz" --queues 0
expect "--queues 9" 1 "--queues 9: want 1\.\.8" --kernel "$dir/good.bz" --queues 9 --cpus 9
expect "--queues above --cpus" 1 "--queues 2: more than --cpus 1" \
	--kernel "$dir/good.bz" --tap kl-nonexist0 --queues 2
expect "--queues without a NIC" 2 "--queues 2: needs --net or --tap" \
	--kernel "$dir/good.bz" --queues 2 --cpus 2
expect "--forward without --net" 2 "--forward needs --net" --kernel "$dir/good.bz" --forward 80:80
expect "bad --name" 1 "--name a/b: want 1..63 of" --kernel "$dir/good.bz" --net lab --name a/b
expect "--name of 64 bytes" 1 "--name a{64}: want 1..63" --kernel "$dir/good.bz" --net lab \
	--name "$(printf 'a%.0s' $(seq 64))"
expect "bad --forward syntax" 1 "--forward 80: want HOSTPORT:GUESTPORT" \
	--kernel "$dir/good.bz" --net lab --forward 80
expect "--forward port 0" 1 "--forward 0:22: want" --kernel "$dir/good.bz" --net lab --forward 0:22
expect "--forward port 65536" 1 "--forward 8080:65536: want" \
	--kernel "$dir/good.bz" --net lab --forward 8080:65536
expect "--forward bad protocol" 1 "--forward 53:53/sctp: want" \
	--kernel "$dir/good.bz" --net lab --forward 53:53/sctp
expect "--forward same host port twice" 1 "--forward 80:82/tcp: host port given twice" \
	--kernel "$dir/good.bz" --net lab --forward 80:81 --forward 80:82/tcp
expect "bad --vhost" 1 "--vhost sometimes: want auto, on or off" --kernel "$dir/good.bz" --vhost sometimes
expect "bad --disk cache mode" 1 "--disk: cache=unsafe: want cache=writeback or cache=none" \
	--kernel "$dir/good.bz" --disk "$dir/d.img,cache=unsafe"
expect "--disk without a file name" 2 "--disk: missing file name" \
	--kernel "$dir/good.bz" --disk ",ro"
expect "bad --disk aio mode" 1 "--disk: aio=posix: want aio=auto, aio=uring or aio=thread" \
	--kernel "$dir/good.bz" --disk "$dir/d.img,aio=posix"
expect "bad --virtio-transport" 1 "--virtio-transport ccw: want pci or mmio" \
	--kernel "$dir/good.bz" --virtio-transport ccw
# 8 disks and 4 NICs: one more than virtio-mmio has windows; refused
# before any lease or tap is made
expect "--virtio-transport mmio with 12 devices" 1 \
	"--virtio-transport mmio: 12 virtio devices, at most 11" --kernel "$dir/good.bz" \
	--virtio-transport mmio $(for i in 1 2 3 4 5 6 7 8; do printf -- '--disk %s,ro ' "$dir/d.img"; done) \
	--net n0 --nic net=n1 --nic net=n2 --nic net=n3

# unknown command: a usage error too
"$VM" frobnicate >/dev/null 2>&1 </dev/null
t_check "unknown command exits 2" test $? = 2
t_finish
