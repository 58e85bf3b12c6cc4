#!/usr/bin/env bash
# DHCP-to-ssh benchmark: the Debian image (scripts/build-guest --debian)
# booted on a NAT-ed kvmlab network, from process start to its sshd
# answering (an "SSH-" banner) through a port forward on the uplink, for
#   kvmlab-vm  run --net lab --name web --forward 2222:22 (its own DHCP
#              server and forward)
#   qemu       QEMU (q35, virtio-net on a `kvmlab-net tap add` tap, vhost
#              when /dev/vhost-net exists) with dnsmasq serving DHCP on the
#              same kvmlab bridge, as libvirt's default network does, and
#              the same forward (`kvmlab-net forward add`, or an nft DNAT
#              rule in a table of the bench's own before that exists)
# Same kernel, initramfs, command line, 512 MiB, 1 vCPU. The client sits
# in a "wan" namespace and tries 198.51.100.1:2222 over and over (0.5 s
# each); the time is that of the first accepted connection, checked to
# be sshd by its banner.
# Also the DHCP exchange alone, from the guest's own journal (networkd
# logs at debug level in the image): its first DISCOVER to its ACK, on the
# guest's monotonic clock.
# Medians of N runs (default 3), VMMs in turn. Without hardware-backed KVM
# everything runs in one test host (nested KVM under TCG): compare ratios.
# Env: KVMLAB_BENCH_RUNS (3), KVMLAB_BENCH_TIMEOUT (per boot, 300 s),
#      KVMLAB_BENCH_QEMU_MACHINE (q35), KVMLAB_BENCH_VHOST (auto|on|off).
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
IMG=build/debian/debian.img

. bench/lib.sh
if [ -z "${KVMLAB_IN_TESTHOST:-}" ] && [ -z "${KVMLAB_BENCH_DIRECT:-}" ]; then
	bl_build || exit 1
	scripts/build-guest --debian 2>/dev/null || { scripts/build-guest --debian; exit 1; }
	[ -x build/kvmlab-vm ] && [ -x build/kvmlab-net ] || make -j2 all || exit 1
fi
BL_RETRY=1 bl_enter dhcp-ssh.sh 3000 --mem 3072 --disk "$IMG" -- \
	KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-3}" KVMLAB_BENCH_TIMEOUT="${KVMLAB_BENCH_TIMEOUT:-300}" \
	KVMLAB_BENCH_QEMU_MACHINE="${KVMLAB_BENCH_QEMU_MACHINE:-q35}" KVMLAB_BENCH_VHOST="${KVMLAB_BENCH_VHOST:-auto}" \
	KVMLAB_BENCH_ONLY="${KVMLAB_BENCH_ONLY:-}"

RUNS=${KVMLAB_BENCH_RUNS:-3}
TMO=${KVMLAB_BENCH_TIMEOUT:-300}
MACHINE=${KVMLAB_BENCH_QEMU_MACHINE:-q35}
B=$TOP/build
K=$B/guest/bzImage I=$B/guest/initrd.img
KEY=$B/debian/id_ed25519
CMDLINE="$(cat "$B/debian/cmdline") quiet"
QEMU=$(command -v qemu-system-x86_64 || true)
GUEST_IP=192.168.58.10 QMAC=52:54:00:58:00:10
for f in "$K" "$I" "$TOP/$IMG" "$KEY" "$B/kvmlab-vm" "$B/kvmlab-net"; do
	[ -e "$f" ] || { echo "bench/dhcp-ssh.sh: $f missing" >&2; exit 1; }
done

lab=kl-bdl-$$ wan=kl-bdw-$$
work=$(mktemp -d /tmp/kvmlab-bench-dhcp.XXXXXX) || exit 1
vpid='' dpid=''
cleanup() {
	[ -n "$vpid" ] && kill -9 "$vpid" 2>/dev/null
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	ip netns exec "$lab" "$B/kvmlab-net" down lab >/dev/null 2>&1
	bl_ns_del "$lab" "$wan"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
inlab() { ip netns exec "$lab" "$@"; }
inwan() { ip netns exec "$wan" "$@"; }

# ---- the lab: router namespace with the kvmlab network, and the wan ----
ip netns add "$lab" && ip netns add "$wan" || exit 1
ip -n "$lab" link add up0 type veth peer name wan0 netns "$wan" || exit 1
ip -n "$lab" link set lo up
ip -n "$lab" addr add 198.51.100.1/24 dev up0
ip -n "$lab" link set up0 up
ip -n "$wan" link set lo up
ip -n "$wan" addr add 198.51.100.2/24 dev wan0
ip -n "$wan" link set wan0 up
inlab "$B/kvmlab-net" up lab --cidr 192.168.58.1/24 --nat --uplink up0 >/dev/null || exit 1
br=$(ip -n "$lab" -j link show type bridge | jq -r '.[0].ifname')
inlab sh -c "echo 100 >/proc/sys/net/ipv4/neigh/$br/retrans_time_ms"

has_forward_vm=0 has_forward_net=0
"$B/kvmlab-vm" run --help 2>&1 | grep -q -- --forward && has_forward_vm=1
"$B/kvmlab-net" --help 2>&1 | grep -q 'forward add' && has_forward_net=1

# wait_banner: from wan, one connection attempt after another to
# 198.51.100.1:2222, each given 0.5 s (its first SYN; the guest's ARP
# answer comes within the lab's 100 ms retransmit time), until one is
# accepted: that moment (ms) is printed, once the same port also gives an
# "SSH-" banner (on a new connection, up to 60 s: a slow guest's sshd may
# take seconds to re-exec for it). Attempts never overlap: a pile of
# half-served connections would slow the guest (sshd's MaxStartups).
# It gives up at once when the VMM ($vpid) has exited.
wait_banner() {
	inwan bash -c '
		end=$((SECONDS + $1))
		while [ $SECONDS -lt $end ] && kill -0 "$3" 2>/dev/null; do
			if timeout 0.5 bash -c "exec 3<>/dev/tcp/198.51.100.1/2222" 2>/dev/null; then
				t=$(( $(date +%s%N) / 1000000 ))
				timeout 60 bash -c "exec 3<>/dev/tcp/198.51.100.1/2222 && IFS= read -r -t 60 l <&3 && [[ \$l == SSH-* ]]" 2>/dev/null &&
					echo "$t" >"$2"
				break
			fi
			sleep 0.1
		done' _ "$TMO" "$work/up" "$vpid"
	head -n1 "$work/up" 2>/dev/null
}

# dhcp_ms: DISCOVER..ACK from the guest's networkd journal (monotonic s)
dhcp_ms() {
	inlab timeout 60 ssh -q -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ConnectTimeout=20 -o BatchMode=yes "root@$1" \
		"journalctl -b -u systemd-networkd -o short-monotonic --no-pager" >"$work/journal" 2>/dev/null
	# systemd 252: "eth0: DHCPv4 client: DISCOVER" ... "... ACK"
	awk 'function ts() { match($0, /[0-9]+\.[0-9]+/); return substr($0, RSTART, RLENGTH) }
	     /DHCP/ && /DISCOVER/ && !d { d = ts() }
	     /DHCP/ && /: ACK/ && d && !a { a = ts() }
	     END { if (d && a) printf "%d\n", (a - d) * 1000 }' "$work/journal"
}

# qemu_fwd add|del: qemu's port forward (kvmlab-net's, where it has one)
qemu_fwd() {
	[ $has_forward_net = 1 ] || return 0
	if [ "$1" = add ]; then
		# a kvmlab-vm killed with -9 leaves its forward (reclaimed by its
		# next start): take the port over
		inlab "$B/kvmlab-net" forward del lab --proto tcp --port 2222 >/dev/null 2>&1
		inlab "$B/kvmlab-net" forward add lab --proto tcp --port 2222 --to "$GUEST_IP:22" >/dev/null
	else
		inlab "$B/kvmlab-net" forward del lab --proto tcp --port 2222 >/dev/null
	fi
}

run_one() {  # NAME RUN#: prints "boot_ms dhcp_ms"
	local name=$1 t0 up addr d
	rm -f "$work/up"
	# no neighbour entry left from the previous guest (another MAC, maybe)
	ip -n "$lab" neigh flush dev "$br" 2>/dev/null
	cp --sparse=always "$TOP/$IMG" "$work/disk.img" || return 1
	case $name in
	kvmlab-static)
		# pre-merge stand-in: no DHCP server in the VMM yet, so the address
		# comes from ip= (systemd-network-generator); same forward as qemu's
		t0=$(bl_now_ms)
		ip netns exec "$lab" "$B/kvmlab-vm" run --net lab --mac "$QMAC" --mem 512M --cpus 1 \
			--kernel "$K" --initrd "$I" --disk "$work/disk.img" \
			--cmdline "$CMDLINE net.ifnames=0 ip=$GUEST_IP::192.168.58.1:255.255.255.0::eth0:off" \
			--console "file:$work/console-$name-$2" </dev/null >"$work/vm.log" 2>&1 &
		vpid=$! ;;
	kvmlab-vm)
		t0=$(bl_now_ms)
		ip netns exec "$lab" "$B/kvmlab-vm" run --net lab --name web --mem 512M --cpus 1 \
			--kernel "$K" --initrd "$I" --cmdline "$CMDLINE" --disk "$work/disk.img" \
			--forward 2222:22 --console "file:$work/console-$name-$2" </dev/null >"$work/vm.log" 2>&1 &
		vpid=$! ;;
	qemu)
		qemu_fwd add || return 1
		local vhost=${KVMLAB_BENCH_VHOST:-auto}
		[ "$vhost" = auto ] && { vhost=off; [ -c /dev/vhost-net ] && vhost=on; }
		t0=$(bl_now_ms)
		ip netns exec "$lab" "$QEMU" -enable-kvm -M "$MACHINE" -cpu host -m 512 -smp 1 -nodefaults -no-user-config \
			-display none -serial "file:$work/console-$name-$2" -monitor none -no-reboot \
			-kernel "$K" -initrd "$I" -append "$CMDLINE" \
			-drive "file=$work/disk.img,format=raw,if=virtio,cache=writeback" \
			-netdev "tap,id=n0,ifname=klq0,script=no,downscript=no,vnet_hdr=on,vhost=$vhost" \
			-device "virtio-net-pci,netdev=n0,mac=$QMAC,romfile=" </dev/null >"$work/vm.log" 2>&1 &
		vpid=$! ;;
	esac
	up=$(wait_banner)
	[ "$name" = qemu ] && qemu_fwd del
	if [ -z "$up" ]; then
		echo "# $name run $2: no ssh banner within ${TMO}s; console tail:" >&2
		tail -n 15 "$work/console-$name-$2" | tr -d '\r' | sed 's/^/#   /' >&2
		sed 's/^/#   vmm: /' "$work/vm.log" | tail -n 5 >&2
		[ -f "$work/dnsmasq.log" ] && tail -n 5 "$work/dnsmasq.log" | sed 's/^/#   dnsmasq: /' >&2
		ip -n "$lab" neigh show | sed 's/^/#   neigh: /' >&2
		inlab nft list ruleset 2>&1 | grep -E 'dnat|masq|policy' | sed 's/^/#   nft: /' >&2
		kill -9 "$vpid" 2>/dev/null; wait "$vpid" 2>/dev/null; vpid=''
		return 1
	fi
	addr=$GUEST_IP
	# kvmlab-vm's lease, from show --json (an object naming vm "web")
	[ "$name" = kvmlab-vm ] && addr=$(inlab "$B/kvmlab-net" show lab --json 2>/dev/null |
		jq -r '[.. | objects | select(.vm? == "web") | (.addr // .ip // .address // empty) | tostring | sub("/.*"; "")][0] // empty' 2>/dev/null)
	d=$(dhcp_ms "$addr")
	# SIGTERM lets kvmlab-vm remove its forward and lease; -9 after 10 s
	kill "$vpid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.2; done
	kill -9 "$vpid" 2>/dev/null
	wait "$vpid" 2>/dev/null
	vpid=''
	echo "$((up - t0)) ${d:--}"
	if [ "$2" = 1 ] && [ "$name" = qemu ]; then echo "# qemu: vhost=$vhost" >&2; fi
	return 0
}

names=()
if [ $has_forward_vm = 1 ]; then names+=(kvmlab-vm)
else
	echo "# kvmlab-vm: SKIP: this kvmlab-vm has no --forward/--name (the VMM's DHCP server and forwards come with branch dhcp)"
	echo "# kvmlab-static instead: kvmlab-vm with a static ip= (no DHCP) behind qemu's forward: an indication only"
	names+=(kvmlab-static)
fi
if [ -n "$QEMU" ] && command -v dnsmasq >/dev/null; then names+=(qemu)
else echo "# qemu: SKIP: needs qemu-system-x86_64 and dnsmasq"; fi
case ${KVMLAB_BENCH_ONLY:-} in ?*) names=("$KVMLAB_BENCH_ONLY") ;; esac

if [[ " ${names[*]} " == *" qemu "* ]] || [[ " ${names[*]} " == *" kvmlab-static "* ]]; then
	# dnsmasq as libvirt runs it for a NAT network, on the kvmlab bridge;
	# it answers qemu's MAC only: kvmlab-vm's guest, on the same bridge,
	# must get its lease from its own VMM (with vhost its DHCP broadcasts
	# reach the bridge too)
	[[ " ${names[*]} " == *" qemu "* ]] && { inlab "$B/kvmlab-net" tap add klq0 --net lab >/dev/null || exit 1; }
	ip netns exec "$lab" dnsmasq --keep-in-foreground --conf-file=/dev/null --strict-order --bind-dynamic \
		--except-interface=lo --interface="$br" --no-resolv --user=root --group=root --pid-file= \
		--dhcp-range=192.168.58.2,192.168.58.254,255.255.255.0 --dhcp-no-override \
		--dhcp-authoritative --dhcp-lease-max=253 --dhcp-leasefile="$work/leases" \
		--dhcp-host="$QMAC,$GUEST_IP" --dhcp-ignore='tag:!known' --log-facility="$work/dnsmasq.log" &
	dpid=$!
	if [ $has_forward_net = 1 ]; then
		# made before each qemu run and removed after it (qemu_fwd): the
		# same host port is kvmlab-vm's own --forward in its runs
		:
	else
		echo "# qemu: kvmlab-net has no 'forward add' yet: the forward is the bench's own nft DNAT rule"
		inlab nft -f - <<EOF || exit 1
table ip klbench {
	chain pre { type nat hook prerouting priority dstnat; ip daddr 198.51.100.1 tcp dport 2222 dnat to $GUEST_IP:22; }
}
EOF
	fi
fi

# (the VMMs are started with `ip netns exec ... &`, never through a shell
# function: $! must be the VMM itself, or a kill would orphan it)
declare -A boot=() dhcp=()
nofail=0
for ((r = 1; r <= RUNS; r++)); do
	for n in "${names[@]}"; do
		res=$(run_one "$n" "$r") || { echo "# $n run $r failed (no banner within ${TMO}s: a hung or failed boot), left out"; nofail=$((nofail + 1)); continue; }
		echo "# $n run $r: sshd answered after ${res% *} ms; DHCP DISCOVER..ACK ${res#* } ms"
		boot[$n]+="${res% *} "
		dhcp[$n]+="${res#* } "
	done
done

median() { tr ' ' '\n' | bl_median; }
echo "# process start -> sshd banner through the forward, median of $RUNS (ms); DHCP exchange in the guest (ms)"
printf '%-10s %10s %10s   %s\n' vmm boot_ms dhcp_ms "runs (boot)"
for n in "${names[@]}"; do
	printf '%-10s %10s %10s   %s\n' "$n" "$(median <<<"${boot[$n]:-}")" "$(median <<<"${dhcp[$n]:-}")" "${boot[$n]:-}"
done
if [ -n "${boot[kvmlab-static]:-}" ] && [ -n "${boot[qemu]:-}" ]; then
	k=$(median <<<"${boot[kvmlab-static]}") q=$(median <<<"${boot[qemu]}")
	awk -v k="$k" -v q="$q" 'BEGIN { printf "ratio qemu(dnsmasq)/kvmlab-static (boot to sshd, pre-merge indication): %.2fx\n", q / k }'
fi
if [ -n "${boot[kvmlab-vm]:-}" ] && [ -n "${boot[qemu]:-}" ]; then
	k=$(median <<<"${boot[kvmlab-vm]}") q=$(median <<<"${boot[qemu]}")
	awk -v k="$k" -v q="$q" 'BEGIN { printf "ratio qemu/kvmlab-vm (boot to sshd): %.2fx (goal >= 1.3x)\n", q / k }'
	k=$(median <<<"${dhcp[kvmlab-vm]}") q=$(median <<<"${dhcp[qemu]}")
	[ "$k" != NA ] && [ "$q" != NA ] && [ "$k" != 0 ] &&
		awk -v k="$k" -v q="$q" 'BEGIN { printf "ratio qemu/kvmlab-vm (DHCP DISCOVER..ACK): %.2fx\n", q / k }'
fi
echo "# $nofail run(s) gave no banner and are left out of the medians"
exit 0
