#!/usr/bin/env bash
# show --json: valid JSON (python's json and jq both parse it) in every
# state, with the oddest names that are allowed; booleans are booleans,
# unknown is null; each tap's owner, group, queues and MAC agree with
# ip -j -d link; the same without CAP_NET_ADMIN (networks from the tags).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns json
pyok() { python3 -c 'import json, sys; json.load(sys.stdin)' 2>/dev/null; }
# valid NAME: the last output parses with python and jq
valid() {
	if printf '%s' "$KN_OUT" | pyok && printf '%s' "$KN_OUT" | jq -e . >/dev/null 2>&1; then
		t_ok "$1: valid JSON (python, jq)"
	else t_fail "$1: valid JSON (python, jq)" "$(printf '%q' "${KN_OUT:0:200}")"; fi
}

kn_expect "show --json with no network" 0 "$ns" show --json
valid "no network"
t_check "no network: networks [] and forwarding false, forwarding_prev null" \
	jq_true '.networks == [] and .forwarding == false and .forwarding_prev == null' <<<"$KN_OUT"

names=(... - _ A-Z_9.z .x abcdefghijklmno)
i=0
for n in "${names[@]}"; do
	i=$((i + 1))
	net_down_at_exit "$ns" "$n"
	kn_expect "up '$n'" 0 "$ns" up "$n" --cidr "10.97.$i.1/24" --bridge "kj$i" $([ $((i % 2)) = 0 ] && echo --nat)
done
kn_expect "up with --dns and --uplink" 0 "$ns" up dnsnet --cidr 10.98.0.1/24 --bridge kjd --nat --uplink lo --dns 1.1.1.1,9.9.9.9 --mtu 9000
net_down_at_exit "$ns" dnsnet
kn_expect "tap add odd tap names (after --)" 0 "$ns" tap add --net ... --owner nobody --group 100 --queues 3 -- ... -.- _x
kn_expect "tap add plain" 0 "$ns" tap add kjt --net dnsnet
kn_expect "show --json" 0 "$ns" show --json
valid "seven networks, odd names"
j=$KN_OUT
t_check "seven networks listed" test "$(jq '.networks | length' <<<"$j")" = 7
t_check "names round-trip exactly" test "$(jq -r '[.networks[].name] | sort | join(" ")' <<<"$j")" = \
	"$(printf '%s\n' "${names[@]}" dnsnet | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')"
t_check "booleans are booleans" jq_true '[.networks[] | .nat, .stp, .bridge_exists, .bridge_up, .address_present, .defined, .nft_present,
	(.taps[] | .up, .enslaved, .multi_queue, .persistent)] | all(type == "boolean")' <<<"$j"
t_check "forwarding true, forwarding_prev false (booleans)" jq_true '.forwarding == true and .forwarding_prev == false' <<<"$j"
t_check "dnsnet: dns, uplink, mtu_config, nft_table" jq_true '.networks[] | select(.name == "dnsnet") |
	.dns == {"servers": ["1.1.1.1", "9.9.9.9"], "from": "network", "servers6": []} and .uplink == "lo" and .mtu_config == 9000 and .mtu == 9000 and .nft_table == "ip kvmlab-dnsnet"' <<<"$j"
t_check "no --uplink and no --mtu: null; no --dns: the host's resolvers" jq_true '.networks[] | select(.name == "...") |
	.uplink == null and .mtu_config == null and .dns.from == "host" and (.dns.servers | type == "array")' <<<"$j"
t_check "leases and forwards: [] on every network" jq_true '[.networks[] | .leases, .forwards] | all(. == [])' <<<"$j"
t_check "plain tap: owner and group null, queues 1" jq_true '.networks[] | select(.name == "dnsnet") | .taps[0] |
	.name == "kjt" and .owner == null and .group == null and .queues == 1 and .multi_queue == false' <<<"$j"
# each tap against ip -j -d link
kl=$(in_ns "$ns" ip -j -d link | jq -c '[.[] | select(.linkinfo.info_kind == "tun") |
	{name: .ifname, mac: .address, mq: .linkinfo.info_data.multi_queue, up: (.flags | index("UP") != null),
	 master, user: .linkinfo.info_data.user, group: .linkinfo.info_data.group}] | sort_by(.name)')
sh=$(jq -c --arg nb "$(id -u nobody)" '[.networks[] | .bridge as $b | .taps[] |
	{name, mac, mq: .multi_queue, up, master: $b, owner, group, queues}] | sort_by(.name)' <<<"$j")
t_check "taps: names, MACs, multi_queue, up, master as ip -j -d link says" test \
	"$(jq -c '[.[] | {name, mac, mq, up, master}]' <<<"$sh")" = "$(jq -c '[.[] | {name, mac, mq, up, master}]' <<<"$kl")"
t_check "odd taps: owner nobody, group 100, queues 3" jq -e --arg u "$(id -u nobody)" \
	'[.[] | select(.name != "kjt")] | length == 3 and all(.owner == ($u | tonumber) and .group == 100 and .queues == 3)' >/dev/null <<<"$sh"

kn_expect "show '...' --json" 0 "$ns" show ... --json
valid "one network"
t_check "show ... lists only ..." jq_true '[.networks[].name] == ["..."]' <<<"$KN_OUT"

# unprivileged: no nft reads, networks from the bridges' tags
ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	timeout 20 "$KVMLAB_NET" show --json >"$KN_TMP/out" 2>"$KN_TMP/err"
KN_RC=$?; KN_OUT=$(cat "$KN_TMP/out")
t_check "unprivileged show --json exits 0 (rc=$KN_RC)" test "$KN_RC" = 0
valid "unprivileged"
t_check "unprivileged: seven networks, nat null, nft_present null, address from the bridge" jq_true '
	(.networks | length) == 7 and all(.networks[]; .nat == null and .nft_present == null and .defined == false and
		.dns == null and .leases == null and .forwards == null) and
	(.networks[] | select(.name == "dnsnet") | .cidr == "10.98.0.1/24")' <<<"$KN_OUT"

# a network whose bridge and table are gone is still valid JSON
in_ns "$ns" ip link del kj1
in_ns "$ns" nft delete table ip kvmlab-_
kn_expect "show --json with a missing bridge and a missing table" 0 "$ns" show --json
valid "damaged networks"
t_check "missing bridge: bridge_exists false, mtu null" jq_true '.networks[] | select(.name == "...") | .bridge_exists == false and .mtu == null' <<<"$KN_OUT"
t_check "missing table: the network still shows (from its tag), defined false, nft_present false" \
	jq_true '.networks[] | select(.name == "_") | .defined == false and .nft_present == false and .dns == null and .leases == []' <<<"$KN_OUT"
for n in "${names[@]}" dnsnet; do kn "$ns" down "$n"; done
t_check "after the downs: no link but lo, no table" test "$(in_ns "$ns" ip -j link | jq -r '[.[].ifname] | join(" ")') $(nft_table_count "$ns")" = "lo 0"
t_finish
