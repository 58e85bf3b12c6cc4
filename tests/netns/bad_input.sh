#!/usr/bin/env bash
# Every bad input from the issue: exit 1, exactly one stderr line naming
# the object, and the namespace (links, addresses, routes, ruleset,
# forwarding, kvmlab's state) unchanged. Usage errors exit 2, --help 0.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns bad

# bad NAME OBJ ARGS...: expect rc 1, one line naming OBJ, nothing changed
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

# --- names: NAME, --bridge and TAP over 15 bytes or with '/', ' ', ':'
long=abcdefghijklmnop # 16 bytes
bad "network name of 16 bytes" "$long" up "$long" --cidr 10.60.0.1/24 --bridge klb
bad "bridge name of 16 bytes" "$long" up lab --cidr 10.60.0.1/24 --bridge "$long"
for c in / ' ' : % '"' '\' "$(printf '\xc3\xa9')" '*' '$' '@' '+' '!' '#' "'" '`' ','; do
	bad "network name with '$c'" "a${c}b" up "a${c}b" --cidr 10.60.0.1/24 --bridge klb
	bad "bridge name with '$c'" "b${c}r" up lab --cidr 10.60.0.1/24 --bridge "b${c}r"
done
bad "network name with '%d' (a kernel name template)" 'a%d' up 'a%d' --cidr 10.60.0.1/24
bad "bridge name 'br%d'" 'br%d' up lab --cidr 10.60.0.1/24 --bridge 'br%d'
for n in . ..; do
	bad "network name '$n'" "$n" up "$n" --cidr 10.60.0.1/24 --bridge klb
	bad "bridge name '$n'" "$n" up lab --cidr 10.60.0.1/24 --bridge "$n"
done
bad "byte 0x80" "$(printf 'a\x80')" up "$(printf 'a\x80')" --cidr 10.60.0.1/24 --bridge klb

# --- CIDRs
for c in 10.60.0.1 10.60.0.1/ 10.60.0.1/33 10.60.0.256/24 10.60.0/24 abc 10.60.0.1/24x \
	' 10.60.0.1/24' 10.60.0.1/-1 10.60.0.1/0 10.60.0.1/32 10.60.0.0/24 10.60.0.255/24 \
	10.60.0.0/16 10.60.255.255/16 0.0.0.1/24 0.1.2.3/8 224.0.0.1/24 239.255.0.1/16 \
	240.0.0.1/24 250.1.2.3/8 255.255.255.254/31 127.0.0.2/8; do
	bad "cidr '$c'" "$c" up lab --cidr "$c" --bridge klb
done

# --- MTU: what a tap can take, and DNS lists
bad "--mtu 65522 (over a tap's 65521)" 65522 up lab --cidr 10.60.0.1/24 --mtu 65522
bad "--mtu 67" 67 up lab --cidr 10.60.0.1/24 --mtu 67
for d in 1.2.3 224.0.0.1 1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4 1.1.1.1, x; do
	bad "--dns '$d'" "$d" up lab --cidr 10.60.0.1/24 --dns "$d"
done

# --- /31 (RFC 3021): both ends are hosts, the bridge takes one
net_down_at_exit "$ns" p2p
kn_expect "up --cidr 10.69.0.0/31 exits 0" 0 "$ns" up p2p --cidr 10.69.0.0/31 --bridge klp2p
t_check "/31: 10.69.0.0/31 on klp2p" test "$(count_addr "$ns" klp2p 10.69.0.0)" = 1
kn_expect "down p2p exits 0" 0 "$ns" down p2p

# --- subnet overlapping an address on another interface
in_ns "$ns" ip link add kldum0 type veth peer name kldum1
in_ns "$ns" ip addr add 10.61.2.5/16 dev kldum0
in_ns "$ns" ip link set kldum0 up
bad "subnet inside 10.61.0.0/16 of kldum0" kldum0 up lab --cidr 10.61.1.1/24 --bridge klb
bad "subnet containing 10.61.0.0/16 of kldum0" kldum0 up lab --cidr 10.61.0.1/8 --bridge klb
bad "same address as kldum0" kldum0 up lab --cidr 10.61.2.5/24 --bridge klb

# --- bridge name taken by a non-bridge, or by a bridge kvmlab did not make
bad "bridge name taken by a veth" kldum0 up lab --cidr 10.62.0.1/24 --bridge kldum0
in_ns "$ns" ip link add klfbr type bridge
bad "bridge name taken by a foreign bridge" klfbr up lab --cidr 10.62.0.1/24 --bridge klfbr
bad "bridge name taken by a foreign bridge, --nat" klfbr up lab --cidr 10.62.0.1/24 --bridge klfbr --nat

# --- a network to hang taps on
net_down_at_exit "$ns" lab
kn_expect "up lab exits 0" 0 "$ns" up lab --cidr 10.63.0.1/24 --bridge klb
in_ns "$ns" ip tuntap add klftap mode tap
kn_expect "tap add kt0 exits 0" 0 "$ns" tap add kt0 --net lab

bad "tap name of 16 bytes" "$long" tap add "$long" --net lab
for c in / ' ' :; do bad "tap name with '$c'" "t${c}a" tap add "t${c}a" --net lab; done
bad "tap name in use by a veth" kldum0 tap add kldum0 --net lab
bad "tap name in use by a foreign tap" klftap tap add klftap --net lab
bad "tap name in use by the bridge" klb tap add klb --net lab
bad "tap name in use by a kvmlab tap with another owner" kt0 tap add kt0 --net lab --owner nobody
bad "tap name in use by a kvmlab tap with other queues" kt0 tap add kt0 --net lab --queues 2
kn_expect "tap add of an existing kvmlab tap, same settings: made whole, exit 0" 0 "$ns" tap add kt0 --net lab
bad "tap name in use, second of three (all or nothing)" klftap tap add kt5 klftap kt6 --net lab
bad "the same tap twice in one call" kt7 tap add kt7 kt7 --net lab
bad "unknown owner" no_such_user_kl tap add kt1 --net lab --owner no_such_user_kl
bad "unknown group" no_such_group_kl tap add kt1 --net lab --group no_such_group_kl
bad "--queues 0" 0 tap add kt1 --net lab --queues 0
bad "--queues 257" 257 tap add kt1 --net lab --queues 257
bad "tap name 'tp%d'" 'tp%d' tap add 'tp%d' --net lab
bad "tap name with a quote" 't"p' tap add 't"p' --net lab
# the bridge's port limit is named before any tap is made
many=(); for i in $(seq 1 1023); do many+=("kp$i"); done
bad "1023 more taps on a bridge with one port: over 1023 ports" 1023 tap add "${many[@]}" --net lab
bad "tap del of a tap kvmlab did not make" klftap tap del klftap
bad "tap del of a missing tap" kt9 tap del kt9
bad "tap del with one missing of two" kt9 tap del kt0 kt9
bad "tap del of the bridge" klb tap del klb
kn_expect "tap del --if-exists of a missing tap exits 0" 0 "$ns" tap del kt9 --if-exists
bad "tap del --if-exists still refuses a foreign tap" klftap tap del klftap --if-exists

# --- missing privilege: nobody without capabilities in the same netns
nopriv() {
	local name=$1; shift
	net_snap "$ns" "$KN_TMP/p0"
	ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		timeout 20 "$KVMLAB_NET" "$@" >"$KN_TMP/out" 2>"$KN_TMP/err"
	KN_RC=$?; KN_OUT=$(cat "$KN_TMP/out"); KN_ERR=$(cat "$KN_TMP/err")
	net_snap "$ns" "$KN_TMP/p1"
	if [ "$KN_RC" = 1 ]; then t_ok "$name unprivileged: exit 1"; else t_fail "$name unprivileged: exit 1" "$(kn_desc)"; fi
	err_one_line "$name unprivileged: one line saying CAP_NET_ADMIN" CAP_NET_ADMIN
	net_same "$name unprivileged: nothing changed" "$KN_TMP/p0" "$KN_TMP/p1"
}
nopriv "up" up lab2 --cidr 10.64.0.1/24 --bridge klb2
nopriv "up --nat" up lab2 --cidr 10.64.0.1/24 --bridge klb2 --nat
nopriv "tap add" tap add kt3 --net lab
nopriv "tap del" tap del kt0
nopriv "down" down lab

# --- usage errors exit 2, --help exits 0 with text on stdout
usage() { kn "$ns" "$@"; if [ "$KN_RC" = 2 ]; then t_ok "usage error exits 2: $*"; else t_fail "usage error exits 2: $*" "$(kn_desc)"; fi; }
usage
usage frobnicate
usage up
usage up lab
usage up lab --cidr
usage up lab --cidr 10.65.0.1/24 --no-such-option
usage up lab --cidr 10.65.0.1/24 extra
usage down
usage tap
usage tap frob kt1
usage tap add kt1
usage tap add --net lab
usage tap del
usage show --no-such-option
for h in "--help" "up --help" "down --help" "tap --help" "tap add --help" "tap del --help" "show --help"; do
	# shellcheck disable=SC2086
	kn "$ns" $h
	if [ "$KN_RC" = 0 ] && [ -n "$KN_OUT" ]; then t_ok "$h exits 0 with text"
	else t_fail "$h exits 0 with text" "$(kn_desc)"; fi
done

kn_expect "down lab exits 0" 0 "$ns" down lab
t_check "down lab: kt0 gone, foreign tap kept" bash -c \
	'! ip netns exec "$1" ip link show kt0 >/dev/null 2>&1 && ip netns exec "$1" ip link show klftap >/dev/null 2>&1' _ "$ns"
t_finish
