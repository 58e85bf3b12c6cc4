#!/usr/bin/env bash
# A real distribution guest: the Debian 12 image (scripts/build-guest
# --debian: systemd, systemd-networkd, openssh-server) boots under
# kvmlab-vm on a NAT-ed kvmlab network made in namespaces of our own:
#   lab  kvmlab-net up lab --nat (uplink up0 198.51.100.1), the VM's tap
#   wan  198.51.100.2: a TCP service on :8080 that logs the source address
#        it sees, and a DNS responder (dnsmasq) answering svc.wan.test
# With the VMM's DHCP server (kvmlab-vm run --name/--forward), the guest
# takes its address by DHCP through systemd-networkd; before that exists,
# by a static ip= on the kernel command line (systemd-network-generator),
# and the DHCP/forward checks SKIP. Oracles: the guest's own `ip -j addr`,
# `networkctl status` and getent over ssh, `kvmlab-net show --json` on the
# host, the wan service's log, $SSH_CONNECTION seen by the guest's sshd,
# kvmlab-vm's exit status after SIGPWR has the guest power itself off, and
# the image's superblock (dumpe2fs) for a clean shutdown. The network
# has IPv6 too (up --cidr6): the guest's systemd-networkd autoconfigures
# from the VMM's router advertisements, the host reaches its sshd over
# IPv6 and the guest reaches the wan through NAT66 (wan 2001:db8:59::2,
# no route back). A second boot
# takes the image's own kernel and initramfs-tools initramfs
# (build/debian/boot/), as a distribution boots: its udev loads the virtio
# modules and it finds root= by label; the guest's /run/initramfs, which
# only initramfs-tools makes, tells the two boots apart.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
IMG=$KVMLAB_BUILD/debian/debian.img
KEY=$KVMLAB_BUILD/debian/id_ed25519
TMO=${KVMLAB_DEBIAN_TIMEOUT:-240}
[ "$(id -u)" = 0 ] || { t_skip "debian" "needs root"; exit 0; }
if [ ! -f "$IMG" ] || [ ! -f "$KEY" ]; then
	t_skip "debian: boots the Debian image" "no $IMG (scripts/build-guest --debian; it needs mmdebstrap)"
	exit 0
fi
command -v ssh >/dev/null || { t_skip "debian" "no ssh client"; exit 0; }
command -v dnsmasq >/dev/null || { t_skip "debian" "no dnsmasq (the wan's DNS responder)"; exit 0; }

# the VMM's DHCP (--name/--forward) and up --dns are always checked; the
# static ip= path stays for bench/dhcp-ssh.sh's kvmlab-static comparison
dhcp=${KVMLAB_DEBIAN_STATIC:+0} dhcp=${dhcp:-1} dns=1

t_netns_new lab dlab || { t_fail "debian: netns" "ip netns add failed"; t_finish; }
t_netns_new wan dwan || { t_fail "debian: netns" "ip netns add failed"; t_finish; }
t_defer "ip netns exec $lab $KVMLAB_NET down lab"
work=$(mktemp -d /tmp/kvmlab-debian.XXXXXX) || exit 1
t_defer "rm -rf '$work'"

ip -n "$lab" link add up0 type veth peer name wan0 netns "$wan" &&
ip -n "$lab" link set lo up && ip -n "$lab" addr add 198.51.100.1/24 dev up0 &&
ip -n "$lab" link set up0 up && ip -n "$wan" link set lo up &&
ip -n "$wan" addr add 198.51.100.2/24 dev wan0 && ip -n "$wan" link set wan0 up &&
ip -n "$lab" addr add 2001:db8:59::1/64 dev up0 nodad && ip -n "$wan" addr add 2001:db8:59::2/64 dev wan0 nodad ||
	{ t_fail "debian: lab and wan namespaces" "veth setup failed"; t_finish; }
ip netns exec "$wan" ncat -l -k 198.51.100.2 8080 --sh-exec \
	"echo \$NCAT_REMOTE_ADDR >>$work/seen; echo \"wan-hello \$NCAT_REMOTE_ADDR\"" >/dev/null 2>&1 &
ip netns exec "$wan" ncat -6 -l -k 2001:db8:59::2 8080 --sh-exec \
	"echo \$NCAT_REMOTE_ADDR >>$work/seen6; echo \"wan-hello \$NCAT_REMOTE_ADDR\"" >/dev/null 2>&1 &
ip netns exec "$wan" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=198.51.100.2 --listen-address=2001:db8:59::2 --bind-interfaces --port=53 \
	--user=root --group=root --pid-file= \
	--address=/svc.wan.test/198.51.100.2 >/dev/null 2>&1 &

upargs=(up lab --cidr 192.168.59.1/24 --cidr6 fd59::1/64 --nat --uplink up0)
[ $dns = 1 ] && upargs+=(--dns 198.51.100.2,2001:db8:59::2)
if ! ip netns exec "$lab" "$KVMLAB_NET" "${upargs[@]}" >"$work/up.log" 2>&1; then
	t_fail "debian: kvmlab-net ${upargs[*]}" "$(head -n1 "$work/up.log")"
	t_finish
fi

# a private copy: booting writes to the disk (journal, machine state)
cp --sparse=always "$IMG" "$work/disk.img" || { t_fail "debian: copy the image" "cp failed"; t_finish; }
cmdline="$(cat "$KVMLAB_BUILD/debian/cmdline") quiet"
vmargs=(run --net lab --mem 512M --cpus 1 --disk "$work/disk.img" --console "file:$work/console")
if [ $dhcp = 1 ]; then
	vmargs+=(--name web --forward 2222:22)
else
	# no DHCP server yet: systemd-network-generator turns ip= into a
	# .network that takes precedence over the image's DHCP one
	cmdline+=" net.ifnames=0 ip=192.168.59.2::192.168.59.1:255.255.255.0::eth0:off nameserver=198.51.100.2"
	t_skip "debian: address by DHCP from the VMM, forward 2222:22" \
		"this kvmlab-vm has no --name/--forward (branch dhcp); static ip= instead"
fi
t0=$(date +%s%N)
ip netns exec "$lab" timeout -k 5 $((TMO + 120)) "$KVMLAB_VM" "${vmargs[@]}" --cmdline "$cmdline" \
	</dev/null >"$work/vm.log" 2>&1 &
vpid=$!
t_defer "kill -9 $vpid"

# lease_addr: VM web's address from kvmlab-net show --json (10 s)
lease_addr() {
	local a=
	for _ in $(seq 1 50); do
		a=$(ip netns exec "$lab" "$KVMLAB_NET" show lab --json 2>/dev/null |
			jq -r '[.. | objects | select(.vm? == "web") | (.addr // .ip // .address // empty) | tostring | sub("/.*"; "")][0] // empty' 2>/dev/null)
		[ -n "$a" ] && break
		sleep 0.2
	done
	echo "$a"
}
# the guest's address: the lease (DHCP), or the static one
addr=192.168.59.2
if [ $dhcp = 1 ]; then
	addr=$(lease_addr)
	if [ -n "$addr" ]; then t_ok "debian: kvmlab-net show --json lists VM web's lease ($addr)"
	else t_fail "debian: kvmlab-net show --json lists VM web's lease" "$(ip netns exec "$lab" "$KVMLAB_NET" show lab --json 2>&1 | tr -d '\n' | cut -c1-200)"; fi
fi

gssh() {  # gssh NS HOST PORT CMD: ssh as root with the image's key
	local ns=$1 host=$2 port=$3
	shift 3
	ip netns exec "$ns" timeout 60 ssh -q -i "$KEY" -p "$port" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o BatchMode=yes "root@$host" "$@"
}
# ssh_up ADDR PID: 0 once sshd on ADDR answers, 1 if PID ends or TMO passes
ssh_up() {
	local end=$((SECONDS + TMO))
	[ -n "$1" ] || return 1
	while [ $SECONDS -lt $end ] && kill -0 "$2" 2>/dev/null; do
		gssh "$lab" "$1" 22 true 2>/dev/null && return 0
		sleep 1
	done
	return 1
}
if ssh_up "$addr" "$vpid"; then
	t_ok "debian: sshd answers on $addr after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else
	t_fail "debian: sshd answers on ${addr:-?}" "not within ${TMO}s; console: $(tr -d '\r' <"$work/console" 2>/dev/null | grep -v '^$' | tail -n 5 | tr '\n' '|' | cut -c1-300) vmm: $(tail -n 2 "$work/vm.log" | tr '\n' ' ')"
	t_finish
fi

# the default initramfs hands over without leaving /run/initramfs (the
# second boot's check must be able to fail)
if gssh "$lab" "$addr" 22 'test ! -e /run/initramfs' 2>/dev/null; then
	t_ok "debian: booted through kvmlab's initramfs (no /run/initramfs)"
else
	t_fail "debian: booted through kvmlab's initramfs (no /run/initramfs)" "the guest has /run/initramfs"
fi

# -- what the guest says about its network --
gssh "$lab" "$addr" 22 'ip -j addr show; echo; networkctl status --no-pager -n 0 "$(ls /sys/class/net | grep -E "^(en|eth)" | head -n1)"' >"$work/net" 2>&1
ifj=$(head -n1 "$work/net")
have=$(jq -r --arg a "$addr" '[.[] | select(.ifname | test("^(en|eth)")) | .addr_info[] | select(.family == "inet" and .local == $a) | "\(.local)/\(.prefixlen)"][0] // empty' <<<"$ifj" 2>/dev/null)
if [ "$have" = "$addr/24" ]; then t_ok "debian: guest's ip -j addr shows $addr/24 on its virtio NIC"
else t_fail "debian: guest's ip -j addr shows $addr/24 on its virtio NIC" "got '${have}': $(cut -c1-200 <<<"$ifj")"; fi
if [ $dhcp = 1 ]; then
	if grep -q "$addr (DHCP4 via 192.168.59.1)" "$work/net"; then
		t_ok "debian: networkctl: the address came by DHCP from 192.168.59.1"
	else
		t_fail "debian: networkctl: the address came by DHCP from 192.168.59.1" "$(grep -A2 'Address' "$work/net" | tr '\n' ' ' | cut -c1-200)"
	fi
else
	if grep -qE 'Network File: /run/systemd/network/' "$work/net" && grep -q 'State: routable' "$work/net"; then
		t_ok "debian: networkctl: routable with the static ip= fallback"
	else
		t_fail "debian: networkctl: routable with the static ip= fallback" "$(grep -E 'State|Network File' "$work/net" | tr '\n' ' ')"
	fi
fi

# out_via_nat WAN UPLINK SEENFILE WHAT: the guest connects to WAN:8080;
# the service answers with the source it saw, and SEENFILE (every source
# it ever saw) must hold UPLINK alone: NAT, never the guest's own address
out_via_nat() {
	local got seen
	got=$(gssh "$lab" "$addr" 22 "exec 3<>/dev/tcp/$1/8080 && timeout 10 head -n1 <&3" 2>&1)
	seen=$(sort -u "$3" 2>/dev/null | tr '\n' ' ')
	if [ "$got" = "wan-hello $2" ] && [ "$seen" = "$2 " ]; then
		t_ok "debian: guest reaches $4"
	else
		t_fail "debian: guest reaches $4" "guest got '$got', wan saw '$seen'"
	fi
}

# -- out through NAT: the wan sees the uplink address --
out_via_nat 198.51.100.2 198.51.100.1 "$work/seen" "wan:8080, wan sees only 198.51.100.1"

# -- IPv6: the address networkd made from the VMM's advertisement (the
# guest's own ip -j), sshd reached at it from the host, and out to the
# wan through NAT66 --
a6=$(jq -r '[.[] | select(.ifname | test("^(en|eth)")) | .addr_info[] | select(.family == "inet6" and .scope == "global" and (.local | startswith("fd59:"))) | "\(.local)/\(.prefixlen)"][0] // empty' <<<"$ifj" 2>/dev/null)
for _ in $(seq 20); do
	[ -n "$a6" ] && break
	sleep 0.5
	a6=$(gssh "$lab" "$addr" 22 'ip -j addr show' 2>/dev/null | jq -r '[.[] | select(.ifname | test("^(en|eth)")) | .addr_info[] | select(.family == "inet6" and .scope == "global" and (.local | startswith("fd59:")) and (.tentative | not)) | "\(.local)/\(.prefixlen)"][0] // empty' 2>/dev/null)
done
if [[ $a6 == fd59:*/64 ]]; then t_ok "debian: networkd autoconfigured $a6 from the VMM's router advertisement"
else t_fail "debian: an fd59::/64 address by SLAAC" "guest's ip -j: $(cut -c1-300 <<<"$ifj")"; fi
r6=$(gssh "$lab" "$addr" 22 'ip -j -6 route show default' 2>/dev/null | jq -r '.[0] | "\(.gateway) \(.protocol)"' 2>/dev/null)
[ "$r6" = "fe80::1 ra" ] && t_ok "debian: the guest's IPv6 default route: via fe80::1, from the advertisement" ||
	t_fail "debian: the guest's IPv6 default route via fe80::1" "got '$r6'"
got=$(gssh "$lab" "${a6%/*}" 22 'echo $SSH_CONNECTION' 2>&1)
set -- $got
if [ -n "$a6" ] && [ "${1:-}" = fd59::1 ] && [ "${3:-}" = "${a6%/*}" ]; then
	t_ok "debian: the host reaches the guest's sshd at ${a6%/*} (SSH_CONNECTION from fd59::1)"
else t_fail "debian: the host reaches the guest's sshd over IPv6" "SSH_CONNECTION: '$got'"; fi
# the VMM saw the guest claim that address (its duplicate address
# detection): kvmlab-vm list shows it, in the JSON and in the table
if [ $dhcp = 1 ] && [ -n "$a6" ]; then
	lj=$(ip netns exec "$lab" "$KVMLAB_VM" list web --json 2>/dev/null)
	l6=$(jq -r '.[0].nics[0].addr6 // [] | join(" ")' <<<"$lj" 2>/dev/null)
	row=$(ip netns exec "$lab" "$KVMLAB_VM" list web 2>/dev/null | tail -n1)
	if [[ " $l6 " == *" $a6 "* ]] && [[ $row == *"$a6"* ]]; then
		t_ok "debian: kvmlab-vm list shows the address the guest claimed ($a6; JSON addr6: $l6)"
	else t_fail "debian: kvmlab-vm list shows the guest's IPv6 address $a6" "addr6 '$l6', row '$row'"; fi
	# and --forward's IPv6 twins go there (once the VMM's tick has run)
	for _ in $(seq 10); do
		to6=$(jq -r '.[0].nics[0].forwards6_to // empty' <<<"$lj" 2>/dev/null)
		[ "$to6" = "${a6%/*}" ] && break
		sleep 0.5
		lj=$(ip netns exec "$lab" "$KVMLAB_VM" list web --json 2>/dev/null)
	done
	[ "$to6" = "${a6%/*}" ] && t_ok "debian: list --json: forwards6_to is that address ($to6)" ||
		t_fail "debian: list --json: forwards6_to is ${a6%/*}" "got '$to6'"
fi
out_via_nat 2001:db8:59::2 2001:db8:59::1 "$work/seen6" \
	"[2001:db8:59::2]:8080, the wan sees only 2001:db8:59::1 (NAT66)"

# -- DNS: a name only the wan's responder knows --
# (one session: each ssh costs seconds in the test host) the name, then
# the guest resolver's servers per link
gssh "$lab" "$addr" 22 'getent hosts svc.wan.test; echo --; resolvectl dns' >"$work/dns" 2>&1
got=$(sed -n '1,/^--$/p' "$work/dns" | awk '$1 != "--" { print $1 }')
if [ "$got" = 198.51.100.2 ]; then
	if [ $dhcp = 1 ] && [ $dns = 1 ]; then t_ok "debian: resolves svc.wan.test through the DNS server given by up --dns (via DHCP)"
	else t_ok "debian: resolves svc.wan.test through the wan's DNS server (nameserver= on the command line)"; fi
else
	t_fail "debian: resolves svc.wan.test through the wan's DNS server" "getent: '$got'"
fi
[ $dns = 1 ] || t_skip "debian: DNS server from up --dns" "this kvmlab-net has no up --dns (branch netstate)"
# the IPv6 one came in the VMM's router advertisements (RDNSS): the
# guest's own resolver lists it for its NIC
got=$(sed -n '/^--$/,$p' "$work/dns" | grep -E '\((en|eth)[^)]*\):')
if [[ " $got " == *" 2001:db8:59::2 "* ]]; then
	t_ok "debian: the guest's resolver has the IPv6 DNS server from the router advertisement ($got)"
else
	t_fail "debian: the guest's resolver has 2001:db8:59::2 from the router advertisement (RDNSS)" "resolvectl dns: '$got'"
fi

# -- in from wan through the forward to sshd --
if [ $dhcp = 1 ]; then
	got=$(gssh "$wan" 198.51.100.1 2222 'echo $SSH_CONNECTION' 2>&1)
	set -- $got
	if [ "${1:-}" = 198.51.100.2 ] && [ "${3:-}" = "$addr" ] && [ "${4:-}" = 22 ]; then
		t_ok "debian: wan reaches the guest's sshd through 198.51.100.1:2222"
	else
		t_fail "debian: wan reaches the guest's sshd through 198.51.100.1:2222" "SSH_CONNECTION: '$got'"
	fi
	# --forward 2222:22 over IPv6 too: the VMM put it on the address it
	# saw the guest claim (nft holds it, tied to VM web's lease)
	want="fwd tcp 2222 to [${a6%/*}]:22 vm=web"
	for _ in $(seq 20); do
		n6=$(ip netns exec "$lab" nft -j list table ip6 kvmlab-lab 2>/dev/null |
			jq --arg w "$want" '[.nftables[] | select(.rule.comment? == $w)] | length' 2>/dev/null)
		[ "$n6" = 3 ] && break
		sleep 0.5
	done
	got=$(gssh "$wan" 2001:db8:59::1 2222 'echo $SSH_CONNECTION' 2>&1)
	set -- $got
	if [ "$n6" = 3 ] && [ "${1:-}" = 2001:db8:59::2 ] && [ "${3:-}" = "${a6%/*}" ] && [ "${4:-}" = 22 ]; then
		t_ok "debian: --forward 2222:22 over IPv6 too: wan reaches sshd through [2001:db8:59::1]:2222 (nft: '$want')"
	else
		t_fail "debian: --forward 2222:22 over IPv6 to ${a6%/*}" "nft rules '$n6' of '$want'; SSH_CONNECTION: '$got'"
	fi
fi

# -- the serial getty --
if tr -d '\r' <"$work/console" | grep -q 'ttyS0'; then t_ok "debian: a getty runs on the serial console"
else t_fail "debian: a getty runs on the serial console" "no ttyS0 banner on the console"; fi

# -- a graceful stop from the host: SIGPWR presses the ACPI power button,
# systemd-logind powers the guest off; kvmlab-vm exits 0, tap gone, and
# the root file system was unmounted cleanly (the image's superblock) --
pb=$(gssh "$lab" "$addr" 22 'cat /sys/class/input/*/name' 2>/dev/null | tr '\n' ',')
if [[ $pb == *"Power Button"* ]]; then t_ok "debian: the guest has the ACPI power button (input devices: $pb)"
else t_fail "debian: the guest has the ACPI power button" "input devices: '$pb'"; fi
# vpid is timeout(1), which would die of SIGPWR itself: signal its child
vmm=$(pgrep -P "$vpid" | head -1)
[ -n "$vmm" ] && kill -PWR "$vmm"
t_vm_wait "$vpid" 60
taps=$(ip -n "$lab" -o link show type tun 2>/dev/null | wc -l)
if t_powered_off "$rc" "$work/vm.log" && [ "$taps" = 0 ]; then t_ok "debian: SIGPWR: the guest powers itself off, kvmlab-vm exits 0, tap removed"
else t_fail "debian: SIGPWR: the guest powers itself off, kvmlab-vm exits 0, tap removed" "rc '${rc:-still running}', taps left $taps: $(tail -n 2 "$work/vm.log" | tr '\n' ' ')"; fi
if [ $dhcp = 1 ]; then
	left=$(ip netns exec "$lab" nft -j list ruleset 2>/dev/null | jq -r '[.nftables[] | select(.rule) | .rule.comment // empty | select(startswith("fwd tcp 2222"))] | length' 2>/dev/null)
	[ "$left" = 0 ] && t_ok "debian: VM web's forwards, IPv4 and IPv6, went with its lease (nft)" ||
		t_fail "debian: VM web's forwards went with its lease" "$left rules of tcp 2222 left"
fi
# ext4 keeps "clean" while mounted; what a cut leaves is the journal's
# needs_recovery feature, which only an unmount or remount-ro clears
sb=$(dumpe2fs -h "$work/disk.img" 2>/dev/null)
state=$(sed -n 's/^Filesystem state: *//p' <<<"$sb")
feat=$(sed -n 's/^Filesystem features: *//p' <<<"$sb")
if [ "$state" = clean ] && [ -n "$feat" ] && [[ " $feat " != *" needs_recovery "* ]]; then
	t_ok "debian: the root file system was left clean, its journal empty (a shutdown, not a cut)"
else
	t_fail "debian: the root file system was left clean, its journal empty" "state '$state', features '$feat'"
fi

# -- the image's own kernel and initramfs (initramfs-tools), root by label --
kern=$KVMLAB_BUILD/debian/boot/vmlinuz initrd=$KVMLAB_BUILD/debian/boot/initrd.img
if [ ! -f "$kern" ] || [ ! -f "$initrd" ]; then
	t_skip "debian: boots with the image's own kernel and initramfs" "no $kern or $initrd"
	t_finish
fi
[ "$rc" = 0 ] || { t_fail "debian: own kernel and initramfs" "not tried: the first boot did not end"; t_finish; }
ip netns exec "$lab" timeout -k 5 $((TMO + 120)) "$KVMLAB_VM" run --net lab --name web --mem 512M --cpus 1 \
	--kernel "$kern" --initrd "$initrd" --disk "$work/disk.img" --console "file:$work/console2" \
	--cmdline "console=ttyS0 reboot=k root=LABEL=kvmlab-root rw quiet" </dev/null >"$work/vm2.log" 2>&1 &
vpid=$!
t_defer "kill -9 $vpid"
addr=$(lease_addr)
if ssh_up "$addr" "$vpid" &&
   got=$(gssh "$lab" "$addr" 22 'test -d /run/initramfs && echo initramfs-tools; cat /sys/module/virtio_blk/initstate /sys/module/virtio_net/initstate' 2>&1) &&
   [ "$(echo $got)" = "initramfs-tools live live" ]; then
	t_ok "debian: boots with the image's own kernel and initramfs-tools (root=LABEL=, virtio modules by udev), sshd answers on $addr"
else
	t_fail "debian: boots with the image's own kernel and initramfs-tools" "addr '${addr}', guest said '$(echo ${got:-})'; console: $(tr -d '\r' <"$work/console2" 2>/dev/null | grep -v '^$' | tail -n 5 | tr '\n' '|' | cut -c1-300) vmm: $(tail -n 2 "$work/vm2.log" | tr '\n' ' ')"
	t_finish
fi
gssh "$lab" "$addr" 22 'systemctl --no-block poweroff' >/dev/null 2>&1
t_vm_wait "$vpid" 60
if t_powered_off "$rc" "$work/vm2.log"; then t_ok "debian: systemctl poweroff in that guest: kvmlab-vm exits 0"
else t_fail "debian: systemctl poweroff in that guest: kvmlab-vm exits 0" "rc '${rc:-still running}': $(tail -n 2 "$work/vm2.log" | tr '\n' ' ')"; fi
t_finish
