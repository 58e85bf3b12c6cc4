#!/usr/bin/env bash
# Leases: the nft map "leases" of table ip kvmlab-NET, read with nft -j
# (never with kvmlab-net itself): stable MAC and address, reservations,
# bad input (one line, exit 1, namespace unchanged), an exhausted pool,
# stale reclaim after the owner died (a dead pid, a recycled-pid case),
# forwards tied to a VM going with its lease, show/--json states.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns lease
net_down_at_exit "$ns" lab
kn_expect "up lab (no --nat)" 0 "$ns" up lab --cidr 10.45.0.1/24 --bridge kll

# elems NS: "vm mac addr owner reserved" per element of map leases, sorted
elems() {
	in_ns "$ns" nft -j list ruleset | jq -r '.nftables[] | select(.map.name? == "leases") |
		.map.elem // [] | .[] | "\(.[0].elem.comment) \(.[0].elem.val) \(.[1])"' |
		sed -E 's/^vm=([^ ]*) owner=([^ ]*)( reserved)? ([^ ]*) ([^ ]*)$/\1 \4 \5 \2\3/' | sort
}
elem_of() { elems | awk -v v="$1" '$1 == v'; }
# has PATTERN: the ruleset (nft -j) holds the fixed string PATTERN
has() { in_ns "$ns" nft -j list ruleset | grep -qF -- "$1"; }
snap() { net_snap "$ns" "$KN_TMP/$1"; }

# --- reservations, read back from the kernel
kn_expect "lease add lab web" 0 "$ns" lease add lab web
web=$(elem_of web)
t_check "map leases holds web: '$web'" test -n "$web"
t_check "map type: ether_addr : ipv4_addr" jq_true \
	'[.nftables[] | select(.map.name? == "leases") | .map | [.table, .type, .map]] == [["kvmlab-lab","ether_addr","ipv4_addr"]]' \
	< <(in_ns "$ns" nft -j list ruleset)
read -r _ mac addr owner flag <<<"$web"
t_check "web: reserved, no owner ($owner $flag)" test "$owner $flag" = "0/0 reserved"
t_check "web's address is in 10.45.0.2-254 ($addr)" \
	bash -c "[[ $addr =~ ^10\.45\.0\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 2 && BASH_REMATCH[1] <= 254))"
t_check "web's MAC is locally administered unicast ($mac)" \
	test $(( 0x${mac%%:*} & 3 )) = 2
kn_expect "lease del lab web" 0 "$ns" lease del lab web
t_check "lease del: web gone from the map" test -z "$(elem_of web)"
kn_expect "lease add lab web again" 0 "$ns" lease add lab web
t_check "stable: the same MAC and address again" test "$(elem_of web)" = "$web"
kn_expect "lease add lab db --mac --ip" 0 "$ns" lease add lab db --mac 02:aa:bb:cc:dd:01 --ip 10.45.0.50
t_check "db as asked" test "$(elem_of db)" = "db 02:aa:bb:cc:dd:01 10.45.0.50 0/0 reserved"

# --- bad input: one line naming the object, exit 1, nothing changed
bad() {
	local name=$1 obj=$2; shift 2
	snap b0
	kn "$ns" "$@"
	snap b1
	if [ "$KN_RC" = 1 ]; then t_ok "$name: exit 1"
	else t_fail "$name: exit 1" "$(kn_desc)"; fi
	err_one_line "$name: one line naming '$obj'" "$obj"
	net_same "$name: nothing changed" "$KN_TMP/b0" "$KN_TMP/b1"
}
bad "--ip outside the subnet" "10.46.0.5" lease add lab x --ip 10.46.0.5
bad "--ip the bridge's" "10.45.0.1" lease add lab x --ip 10.45.0.1
bad "--ip the network address" "10.45.0.0" lease add lab x --ip 10.45.0.0
bad "--ip the broadcast address" "10.45.0.255" lease add lab x --ip 10.45.0.255
bad "--ip malformed" "10.45.0" lease add lab x --ip 10.45.0
bad "--mac multicast" "01:00:5e:00:00:01" lease add lab x --mac 01:00:5e:00:00:01
bad "--mac all-zero" "00:00:00:00:00:00" lease add lab x --mac 00:00:00:00:00:00
bad "--mac malformed" "02:00:00:00:00" lease add lab x --mac 02:00:00:00:00
bad "VM name already leased" "web" lease add lab web
bad "MAC already leased" "02:aa:bb:cc:dd:01" lease add lab x --mac 02:aa:bb:cc:dd:01
bad "address already leased" "10.45.0.50" lease add lab x --ip 10.45.0.50
bad "bad VM name" 'a"b' lease add lab 'a"b'
bad "VM name of 64 bytes" "vm" lease add lab "$(printf 'v%.0s' $(seq 64))"
bad "unknown network" "nolab" lease add nolab x
bad "lease del of no lease" "nope" lease del lab nope
bad "lease take for a pid that is not running" "pid" lease take lab x --pid 999999999

# --- an exhausted pool: /29 = bridge + 5
kn_expect "up small /29" 0 "$ns" up small --cidr 10.47.0.1/29 --bridge kls
net_down_at_exit "$ns" small
for i in 1 2 3 4; do
	kn "$ns" lease add small r$i
done
# the fifth is owned by a process that dies (a dead pid)
sleep 600 &
owner=$!
t_defer "kill $owner"
kn_expect "lease take small v5 --pid (a live sleep)" 0 "$ns" lease take small v5 --pid $owner
t_check "lease take prints the lease" grep -qE '^vm=v5 mac=[0-9a-f:]{17} address=10\.47\.0\.[2-6]/29 router=10\.47\.0\.1 mtu=[0-9]+ dns=' <<<"$KN_OUT"
v5=$(in_ns "$ns" nft -j list map ip kvmlab-small leases | jq -r '.nftables[] | select(.map) | .map.elem[] | select(.[0].elem.comment | startswith("vm=v5 ")) | .[1]')
t_check "v5's owner is the sleep's pid in the map" has "vm=v5 owner=$owner/"
bad "exhausted pool" "no free address" lease add small r6
bad "exhausted pool (take)" "no free address" lease take small r6 --pid $$
kn "$ns" show small
t_check "show: v5 active" grep -qE "lease +v5 .* active \\(owner pid $owner\\)" <<<"$KN_OUT"
kill $owner; wait $owner 2>/dev/null
kn "$ns" show small
t_check "owner dead: show says stale" grep -qE "lease +v5 .* stale" <<<"$KN_OUT"
t_check "show --json: v5 stale, r1 reserved" jq_true \
	'[.networks[0].leases[] | select(.vm == "v5" or .vm == "r1") | [.vm, .state]] | sort == [["r1","reserved"],["v5","stale"]]' \
	< <(in_ns "$ns" "$KVMLAB_NET" show small --json)
t_check "stale: the element is still in the map" has "vm=v5 owner=$owner/"
kn_expect "lease add small r6: reclaims stale v5" 0 "$ns" lease add small r6
t_check "v5's element is gone" test "$(in_ns "$ns" nft -j list ruleset | grep -c 'vm=v5 ')" = 0
t_check "r6 got v5's address $v5" jq_true \
	"[.nftables[] | select(.map) | .map.elem[] | select(.[0].elem.comment == \"vm=r6 owner=0/0 reserved\") | .[1]] == [\"$v5\"]" \
	< <(in_ns "$ns" nft -j list map ip kvmlab-small leases)
t_check "reservations are never reclaimed: r1-r4 still there" \
	test "$(in_ns "$ns" nft -j list ruleset | grep -o 'vm=r[1-4] owner=0/0 reserved' | sort -u | wc -l)" = 4

# --- a recycled pid: same pid, another start time = dead owner
sleep 600 &
o2=$!
t_defer "kill $o2"
kn_expect "lease take lab t1 --pid (live)" 0 "$ns" lease take lab t1 --pid $o2
start=$(awk '{print $22}' /proc/$o2/stat)
# rewrite t1's element as if an older process with pid o2 had owned it
t1=$(elem_of t1)
read -r _ tmac taddr _ <<<"$t1"
in_ns "$ns" nft delete element ip kvmlab-lab leases "{ $tmac }"
in_ns "$ns" nft add element ip kvmlab-lab leases "{ $tmac comment \"vm=t1 owner=$o2/$((start - 1))\" : $taddr }"
kn "$ns" show lab
t_check "pid alive but another start time: stale" grep -qE "lease +t1 .* stale" <<<"$KN_OUT"
kill $o2; wait $o2 2>/dev/null

# --- take, release; forwards tied to a VM go with its lease
sleep 600 &
o3=$!
t_defer "kill $o3"
kn_expect "lease take lab app --pid" 0 "$ns" lease take lab app --pid $o3
app=$(elem_of app)
kn_expect "lease take lab app again, same owner: no change" 0 "$ns" lease take lab app --pid $o3
t_check "the same lease" test "$(elem_of app)" = "$app"
bad "lease take lab app for another live owner" "app" lease take lab app --pid $$
kn_expect "forward add --vm app --to 22" 0 "$ns" forward add lab --proto tcp --port 2222 --vm app --to 22
t_check "app's forward: 3 rules with vm=app" \
	test "$(in_ns "$ns" nft -j list ruleset | jq '[.nftables[] | select(.rule.comment? // "" | endswith("vm=app"))] | length')" = 3
read -r _ _ app_addr _ <<<"$app"
t_check "the forward goes to app's address $app_addr" has "fwd tcp 2222 to $app_addr:22 vm=app"
bad "forward --vm of a VM without an active lease" "web" forward add lab --proto tcp --port 2223 --vm web --to 22
kn_expect "lease release lab app" 0 "$ns" lease release lab app
t_check "release: app's element and its forward rules are gone" \
	test "$(elem_of app)-$(in_ns "$ns" nft -j list ruleset | grep -c 'vm=app')" = "-0"
kn_expect "lease take lab app again" 0 "$ns" lease take lab app --pid $o3
t_check "app comes back to the same MAC and address" \
	test "$(elem_of app | cut -d' ' -f1-3)" = "$(cut -d' ' -f1-3 <<<"$app")"
kn_expect "forward add --vm app again" 0 "$ns" forward add lab --proto tcp --port 2222 --vm app --to 22
# app's VMM dies and a new one retakes the stale lease: the dead one's
# forwards go, the address stays
kill $o3; wait $o3 2>/dev/null
sleep 600 &
o3=$!
t_defer "kill $o3"
kn_expect "a new owner retakes app's stale lease" 0 "$ns" lease take lab app --pid $o3
t_check "the same address again" test "$(elem_of app | cut -d' ' -f1-3)" = "$(cut -d' ' -f1-3 <<<"$app")"
app_rules() { in_ns "$ns" nft -j list ruleset | jq '[.nftables[] | select(.rule.comment? // "" | endswith("vm=app"))] | length'; }
t_check "the dead owner's forward is gone ($(app_rules) rules)" test "$(app_rules)" = 0
kn_expect "forward add --vm app by the new owner" 0 "$ns" forward add lab --proto tcp --port 2222 --vm app --to 22
t_check "its 3 rules" test "$(app_rules)" = 3
kill $o3; wait $o3 2>/dev/null
t_check "owner killed: the forward stays until a reclaim" test "$(app_rules)" = 3
kn_expect "lease add lab other: reclaims app" 0 "$ns" lease add lab other
t_check "reclaim: app's element and forward rules are gone" \
	test "$(elem_of app)-$(app_rules)" = "-0"
t_check "the stale t1 went with it" test -z "$(elem_of t1)"

# --- lease release of a reservation keeps it; show --json is valid JSON
kn_expect "lease take lab db (a reservation)" 0 "$ns" lease take lab db --pid $$
t_check "db's reservation taken as is" grep -q "mac=02:aa:bb:cc:dd:01 address=10.45.0.50/24" <<<"$KN_OUT"
kn_expect "lease release lab db" 0 "$ns" lease release lab db
t_check "db still reserved, no owner" test "$(elem_of db)" = "db 02:aa:bb:cc:dd:01 10.45.0.50 0/0 reserved"
t_check "show --json parses (python)" bash -c \
	"ip netns exec $ns $KVMLAB_NET show --json | python3 -c 'import json,sys; json.load(sys.stdin)'"
KVMLAB_RESOLV_CONF=$KN_TMP/resolv
printf 'nameserver 127.0.0.53\n' >"$KN_TMP/resolv"
printf 'nameserver 192.0.2.1\nnameserver ::1\n' >"$KN_TMP/resolved"
t_check "dns: stub resolver only -> systemd-resolved's upstream" jq_true \
	'.networks[0].dns == {"servers":["192.0.2.1"],"from":"host","servers6":[]}' \
	< <(ip netns exec "$ns" env KVMLAB_RESOLV_CONF="$KN_TMP/resolv" \
		KVMLAB_RESOLVED_CONF="$KN_TMP/resolved" "$KVMLAB_NET" show lab --json)
t_check "dns: none left -> show says none" bash -c \
	"ip netns exec $ns env KVMLAB_RESOLV_CONF=$KN_TMP/resolv KVMLAB_RESOLVED_CONF=/nonexistent $KVMLAB_NET show lab | grep -q 'dns      none'"

# --- 8 takes at once (the namespace lock serialises them): 8 leases
sleep 600 &
o4=$!
t_defer "kill $o4"
for i in 1 2 3 4 5 6 7 8; do
	ip netns exec "$ns" "$KVMLAB_NET" lease take lab par$i --pid $o4 >/dev/null 2>"$KN_TMP/par$i" &
done
wait_rc=0
for j in $(jobs -p); do [ "$j" = "$o4" ] || wait "$j" || wait_rc=1; done
t_check "8 concurrent takes all exit 0" test "$wait_rc" = 0
t_check "8 leases with 8 distinct addresses in the map" \
	test "$(elems | awk '$1 ~ /^par/ {print $3}' | sort -u | wc -l)" = 8
kill $o4; wait $o4 2>/dev/null

# --- without CAP_NET_ADMIN show works, and says the leases are unknown
if command -v setpriv >/dev/null; then
	nobody() { ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all "$KVMLAB_NET" "$@"; }
	t_check "unprivileged show: leases unknown, not none" \
		grep -q 'leases   unknown' <<<"$(nobody show lab)"
	t_check "unprivileged show --json: leases and forwards null" jq_true \
		'.networks[0] | .leases == null and .forwards == null' < <(nobody show lab --json)
fi

kn_expect "down lab" 0 "$ns" down lab
kn_expect "down small" 0 "$ns" down small
t_check "after down: no table, no map left" test "$(nft_table_count "$ns")" = 0
t_finish
