#!/usr/bin/env bash
# Leases and forwards (made with kvmlab-net itself) against up and down:
# up of a whole network with leases and forwards changes nothing (rule
# handles included); up repairs its own chains and leaves the map
# "leases" and the fwd-* chains as they were; neither up warns about
# fwd-accept; lease/forward calls refuse a network without its table and
# take/forward add one without its tagged bridge (a foreign device with
# the bridge's name is not it), changing nothing; down after leases and
# forwards gives back the namespace byte for byte.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns lnet
net_down_at_exit "$ns" lab
net_down_at_exit "$ns" lab2
net_snap "$ns" "$KN_TMP/before"
UP=(up lab --cidr 10.93.0.1/24 --bridge klln --nat)
kn_expect "up lab --nat" 0 "$ns" "${UP[@]}"
kn_expect "tap add kln0" 0 "$ns" tap add kln0 --net lab
sleep 600 &
owner=$!
t_defer "kill $owner"
kn_expect "lease add lab web" 0 "$ns" lease add lab web
kn_expect "lease take lab app" 0 "$ns" lease take lab app --pid $owner
kn_expect "forward add tcp 8080 to web's address" 0 "$ns" forward add lab --proto tcp --port 8080 --to 10.93.0.77:80
kn_expect "forward add --vm app" 0 "$ns" forward add lab --proto udp --port 5353 --vm app --to 53

# theirs: the lease and forward objects, handles included
theirs() { in_ns "$ns" nft -j list table ip kvmlab-lab |
	jq -S -c '[.nftables[] | select(.map.name? == "leases" or (.chain.name? // "" | startswith("fwd-")) or
		(.rule.chain? // "" | startswith("fwd-")))]'; }
o0=$(theirs)
t_check "the map and 4 fwd-* chains with 2+2+2+2 rules exist" jq_true \
	'([.[] | select(.map)] | length) == 1 and ([.[] | select(.chain)] | length) == 4 and ([.[] | select(.rule)] | length) == 8' <<<"$o0"

net_snap "$ns" "$KN_TMP/whole"
kn_expect "up of a whole network with leases and forwards" 0 "$ns" "${UP[@]}"
net_snap "$ns" "$KN_TMP/whole2"
net_same "it changes nothing (rule handles included)" "$KN_TMP/whole" "$KN_TMP/whole2"
t_check "no warning (fwd-accept is no drop policy)" test -z "$KN_ERR"

# --- damage what up owns: repaired, theirs untouched
in_ns "$ns" nft flush chain ip kvmlab-lab postrouting
in_ns "$ns" nft add chain ip kvmlab-lab forward '{ type filter hook forward priority 0; policy drop; }'
kn_expect "up after flushing postrouting and a drop policy on forward" 0 "$ns" "${UP[@]}"
t_check "forward chain policy accept again" test "$(in_ns "$ns" nft -j list chain ip kvmlab-lab forward |
	jq -r '.nftables[] | select(.chain) | .chain.policy')" = accept
t_check "masquerade rule back in postrouting" test "$(in_ns "$ns" nft -j list chain ip kvmlab-lab postrouting |
	jq '[.nftables[] | select(.rule) | select(any(.rule.expr[]; has("masquerade")))] | length')" = 1
t_check "leases map and fwd-* chains untouched (handles included)" test "$(theirs)" = "$o0"
in_ns "$ns" nft delete chain ip kvmlab-lab postrouting
kn_expect "up after deleting postrouting" 0 "$ns" "${UP[@]}"
t_check "leases map and fwd-* chains untouched again" test "$(theirs)" = "$o0"

kn_expect "up lab2 --nat next to it" 0 "$ns" up lab2 --cidr 10.94.0.1/24 --bridge klln2 --nat
t_check "up lab2: no warning about kvmlab-lab's fwd-accept" bash -c '! grep -q "fwd-accept" <<<"$1"' _ "$KN_ERR"
kn_expect "forward add on lab2, another port" 0 "$ns" forward add lab2 --proto tcp --port 8081 --to 10.94.0.5:80
kn "$ns" forward add lab2 --proto tcp --port 8080 --to 10.94.0.5:80
t_check "the same host port on lab2: exit 1, names lab" bash -c '[ "$1" = 1 ] && grep -q "forwarded by network lab" <<<"$2"' _ "$KN_RC" "$KN_ERR"

# bad NAME OBJ ARGS...: exit 1, one line naming OBJ, namespace unchanged
bad() {
	local name=$1 obj=$2; shift 2
	net_snap "$ns" "$KN_TMP/b0"
	kn "$ns" "$@"
	net_snap "$ns" "$KN_TMP/b1"
	if [ "$KN_RC" = 1 ]; then t_ok "$name: exit 1"
	else t_fail "$name: exit 1" "$(kn_desc)"; fi
	err_one_line "$name: one line naming '$obj'" "$obj"
	net_same "$name: nothing changed" "$KN_TMP/b0" "$KN_TMP/b1"
}

# --- the bridge gone, a foreign device with its name
in_ns "$ns" ip link del klln
in_ns "$ns" ip link add klln type bridge
# an untagged bridge of that name is not the network's
bad "lease take with a foreign klln" "bridge klln: missing" lease take lab w2 --pid $owner
bad "forward add with a foreign klln" "bridge klln: missing" forward add lab --proto tcp --port 9090 --to 10.93.0.9:90
kn_expect "lease add needs no bridge" 0 "$ns" lease add lab w3
kn_expect "lease del needs no bridge" 0 "$ns" lease del lab w3
in_ns "$ns" ip link del klln
kn_expect "up repairs the bridge" 0 "$ns" "${UP[@]}"
t_check "leases map and fwd-* chains untouched by the bridge repair" test "$(theirs)" = "$o0"
kn_expect "lease take works again" 0 "$ns" lease take lab w2 --pid $owner
t_check "lease take prints the bridge's mtu" grep -q ' mtu=1500 ' <<<"$KN_OUT"
kn_expect "lease release w2" 0 "$ns" lease release lab w2

# --- the table gone: no network, whatever the tagged bridge says
# (lab2's table keeps ip_forward's earlier value for the last down)
in_ns "$ns" nft delete table ip kvmlab-lab
bad "lease add without the table" "network lab: not found" lease add lab x
bad "lease take without the table" "network lab: not found" lease take lab x --pid $owner
bad "forward add without the table" "network lab: not found" forward add lab --proto tcp --port 9091 --to 10.93.0.9:90
bad "forward del without the table" "network lab: not found" forward del lab --proto tcp --port 8080
t_check "no table was made on demand" test "$(nft_tables "$ns")" = "ip kvmlab-lab2"
kn_expect "up makes the table again" 0 "$ns" "${UP[@]}"
kn_expect "lease add after up" 0 "$ns" lease add lab x
kn_expect "forward add after up" 0 "$ns" forward add lab --proto tcp --port 8080 --to 10.93.0.77:80

# --- down after leases and forwards: the namespace as before up
kill $owner; wait $owner 2>/dev/null
kn_expect "down lab" 0 "$ns" down lab
kn_expect "down lab2" 0 "$ns" down lab2
net_snap "$ns" "$KN_TMP/after"
net_same "down after leases and forwards: namespace byte-identical to before up" "$KN_TMP/before" "$KN_TMP/after"
t_finish
