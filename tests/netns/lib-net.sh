# Helpers for the kvmlab-net integration tests. Source after tests/lib.sh.
# The kernel is the oracle: snapshots come from ip -j, nft -j and /proc,
# never from kvmlab-net itself.
# tests/run runs every tests/netns/*.sh: executed rather than sourced,
# this file is not a test and does nothing.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then exit 0; fi

KN_TMP=$(mktemp -d /tmp/kvmlab-nettest.XXXXXX)
t_defer "rm -rf $KN_TMP"
KN_TIMEOUT=${KN_TIMEOUT:-30}

# kn NS ARGS...: run kvmlab-net inside NS; sets KN_RC, KN_OUT, KN_ERR.
# A timeout makes a hung kvmlab-net a failure instead of a stuck tier.
kn() {
	local ns=$1; shift
	ip netns exec "$ns" timeout -k 2 "$KN_TIMEOUT" "$KVMLAB_NET" "$@" \
		>"$KN_TMP/out" 2>"$KN_TMP/err"
	KN_RC=$?
	KN_OUT=$(cat "$KN_TMP/out")
	KN_ERR=$(cat "$KN_TMP/err")
}

# kn_desc: the last result, for a failure message
kn_desc() { printf 'rc=%s stderr=%q stdout=%q' "$KN_RC" "$KN_ERR" "${KN_OUT:0:300}"; }

# kn_expect NAME RC ARGS...: run and check the exit code only
kn_expect() {
	local name=$1 want=$2 ns=$3; shift 3
	kn "$ns" "$@"
	if [ "$KN_RC" = "$want" ]; then t_ok "$name"
	else t_fail "$name" "want rc=$want; $(kn_desc)"; fi
}

# in NS CMD...: shorthand for ip netns exec
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# net_need_bin: skip the whole script when kvmlab-net is not built
net_need_bin() {
	if [ ! -x "$KVMLAB_NET" ]; then
		t_skip "$(basename "$0")" "no $KVMLAB_NET (run make net)"
		exit 0
	fi
	command -v jq >/dev/null || { t_fail "$(basename "$0")" "jq missing"; exit 1; }
}

# net_new VAR PREFIX: a fresh namespace with lo up and bridge netfilter
# calls off (a fresh netns starts with bridge-nf-call-iptables=1, which
# kvmlab rightly warns about; only the warning test wants that). On exit
# every kvmlab network registered with net_down_at_exit is brought down
# first, then the ns is removed.
net_new() {
	local __v=$1 __n
	t_netns_new __n "$2" || return 1
	in_ns "$__n" ip link set lo up
	if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
		in_ns "$__n" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-ip*tables; do echo 0 > $f; done'
	fi
	printf -v "$__v" '%s' "$__n"
}

# net_down_at_exit NS NAME: make sure network NAME is brought down
# before its namespace goes, even when the test dies half-way
net_down_at_exit() {
	t_defer "ip netns exec $1 timeout -k 2 10 $KVMLAB_NET down $2 --if-exists"
}

# net_snap NS FILE: everything kvmlab may touch, as normalised JSON:
# links (name, kind, admin flags, mtu, master, alias, tun/bridge data), addresses, routes,
# the whole nft ruleset (handles included: untouched objects keep them)
# and the forwarding sysctl.
net_snap() {
	local ns=$1 f=$2
	# one netns entry and one jq: this runs twice per bad-input case
	{
		in_ns "$ns" sh -c 'ip -j -d link show; ip -j addr show;
			ip -j -4 route show table all; nft -j list ruleset;
			cat /proc/sys/net/ipv4/ip_forward;
			cat /proc/sys/net/ipv6/conf/all/forwarding' |
		jq -S -s '
		{links: [.[0][] | {ifname, mtu, master, ifalias,
			# carrier comes and goes on its own; admin state stays
			flags: (.flags - ["LOWER_UP", "NO-CARRIER", "M-DOWN"]),
			kind: .linkinfo.info_kind,
			data: (.linkinfo.info_data | if type == "object" then
				with_entries(select(.key | test("timer") | not)) else . end)}]
			| sort_by(.ifname),
		 addrs: [.[1][] | {ifname, a: [.addr_info[] |
			{family, local, prefixlen, broadcast}] | sort_by(.local)}]
			| sort_by(.ifname),
		 routes: (.[2] | sort_by(.dst, .dev, .table)),
		 ruleset: (.[3].nftables | map(select(has("metainfo") | not))),
		 ip_forward: .[4], ipv6_forwarding: .[5]}'
	} >"$f" 2>&1
}

# net_same NAME A B: pass when two snapshots are identical
net_same() {
	if cmp -s "$2" "$3"; then t_ok "$1"
	else t_fail "$1" "namespace changed: $(diff "$2" "$3" | grep '^[<>]' | head -6 | tr '\n' ' ' | tr -s ' ')"; fi
}

# err_one_line NAME OBJ: the last run wrote exactly one stderr line, and
# that line names OBJ
err_one_line() {
	local n
	n=$(printf '%s' "$KN_ERR" | grep -c '')
	if [ "$n" = 1 ] && printf '%s' "$KN_ERR" | grep -qF -- "$2"; then t_ok "$1"
	else t_fail "$1" "want one stderr line naming '$2'; got $n: $(printf '%q' "$KN_ERR")"; fi
}

# link_json NS DEV: ip -j -d link of DEV (empty when it does not exist)
link_json() { in_ns "$1" ip -j -d link show dev "$2" 2>/dev/null | jq -c '.[0] // empty'; }
link_exists() { in_ns "$1" ip link show dev "$2" >/dev/null 2>&1; }

# count_addr NS DEV ADDR: how many times ADDR is on DEV
count_addr() {
	in_ns "$1" ip -j addr show dev "$2" 2>/dev/null |
		jq --arg a "$3" '[.[].addr_info[] | select(.local == $a)] | length'
}

# nft_rule_count NS: number of rules in the whole ruleset
nft_rule_count() { in_ns "$1" nft -j list ruleset | jq '[.nftables[] | select(has("rule"))] | length'; }
# nft_table_count NS: number of tables
nft_table_count() { in_ns "$1" nft -j list ruleset | jq '[.nftables[] | select(has("table"))] | length'; }
# nft_tables NS: "family name" of every table, one per line
nft_tables() { in_ns "$1" nft -j list ruleset | jq -r '.nftables[] | select(has("table")) | .table | "\(.family) \(.name)"'; }

ip_forward() { in_ns "$1" cat /proc/sys/net/ipv4/ip_forward; }
ip6_forward() { in_ns "$1" cat /proc/sys/net/ipv6/conf/all/forwarding; }

# jq_true FILTER: FILTER on stdin yields true (quietly, for t_check)
jq_true() { jq -e "$1" >/dev/null 2>&1; }

# net_raw NS FILE: the kill -9 oracle, byte for byte as the tools print
# it: ip -j -d link, ip -j addr, nft -j list ruleset, ip_forward and
# IPv6 forwarding
net_raw() {
	in_ns "$1" sh -c 'ip -j -d link show; echo; ip -j addr show; echo;
		nft -j list ruleset; echo; cat /proc/sys/net/ipv4/ip_forward;
		cat /proc/sys/net/ipv6/conf/all/forwarding' >"$2" 2>&1
}

# net_refuse NS NAME WANT ARGS...: kvmlab-net ARGS in NS must fail with
# exit 1 and one stderr line holding WANT, and change nothing (net_snap
# before and after)
net_refuse() {
	local ns=$1 name=$2 want=$3; shift 3
	net_snap "$ns" "$KN_TMP/refuse0"
	kn "$ns" "$@"
	net_snap "$ns" "$KN_TMP/refuse1"
	if [ "$KN_RC" = 1 ] && [ "$(printf '%s' "$KN_ERR" | grep -c '')" = 1 ] &&
		printf '%s' "$KN_ERR" | grep -qF -- "$want" &&
		cmp -s "$KN_TMP/refuse0" "$KN_TMP/refuse1"; then
		t_ok "$name: exit 1, one line, nothing changed"
	else t_fail "$name" "want '$want'; $(kn_desc)"; fi
}

# Port forward tests. fwd_guest_listen NS TCP_ADDR UDP_ADDR [NCAT_OPT...]:
# the guest's listeners: tcp 80 on TCP_ADDR (every address when empty)
# prints the peer it sees; udp 53 on UDP_ADDR answers "udp-guest" (ncat's
# udp listener serves one peer: no -k). Returns once both listen.
fwd_guest_listen() {
	local ns=$1 tcp=$2 udp=$3; shift 3
	# shellcheck disable=SC2086 # an empty TCP_ADDR is no argument
	ip netns exec "$ns" timeout 240 ncat -l -k $tcp 80 \
		--sh-exec 'echo "guest peer=$NCAT_REMOTE_ADDR"' >/dev/null 2>&1 &
	t_defer "kill $!"
	ip netns exec "$ns" timeout 240 ncat "$@" -u -l "$udp" 53 --sh-exec 'echo udp-guest' \
		>/dev/null 2>&1 &
	t_defer "kill $!"
	for _ in $(seq 50); do in_ns "$ns" ss -Hltn "sport = :80" | grep -q . &&
		in_ns "$ns" ss -Hlun "sport = :53" | grep -q . && break; sleep 0.1; done
}
# fwd_connect NS ADDR PORT: what a TCP client in NS hears back
fwd_connect() { ip netns exec "$1" timeout 6 ncat --recv-only -w 2 "$2" "$3" 2>/dev/null; }
# fwd_udp NS ADDR PORT: the first line of the answer to a datagram (stdin
# stays open a moment: the answer comes back before ncat quits)
fwd_udp() { (echo ping; sleep 1) | ip netns exec "$1" timeout 4 ncat -u -w 2 "$2" "$3" 2>/dev/null | head -1; }
