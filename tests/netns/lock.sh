#!/usr/bin/env bash
# The per-namespace lock: a kvmlab-net stopped (SIGSTOP) while it holds
# the lock in namespace A delays nothing in namespace B; in A the next
# command waits its bounded time, then fails with one line naming the
# holder's pid; the lock is free again the moment the holder dies.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new A lockA
net_new B lockB
net_down_at_exit "$A" lab
net_down_at_exit "$B" lab
kn_expect "up lab in A" 0 "$A" up lab --cidr 10.91.0.1/24 --bridge klla

# A holder that stops itself while holding the lock (mid tap add).
ip netns exec "$A" env KVMLAB_NET_CRASH=tap:up:stop "$KVMLAB_NET" tap add kla0 --net lab \
	>/dev/null 2>&1 &
holder=$!
t_defer "kill -9 $holder 2>/dev/null"
for _ in $(seq 1 100); do
	[ "$(awk '{print $3}' "/proc/$holder/stat" 2>/dev/null)" = T ] && break
	sleep 0.05
done
t_check "holder $holder is stopped while holding A's lock" \
	test "$(awk '{print $3}' "/proc/$holder/stat" 2>/dev/null)" = T

ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
kn "$B" up lab --cidr 10.91.0.1/24 --bridge klla --nat
t1=$(ms)
t_check "B: up exits 0 while A's lock is held (rc=$KN_RC)" test "$KN_RC" = 0
t_check "B: not delayed ($((t1 - t0)) ms < 2000)" test $((t1 - t0)) -lt 2000
kn_expect "B: tap add exits 0" 0 "$B" tap add klb0 --net lab
kn_expect "B: down exits 0" 0 "$B" down lab

t0=$(ms)
KVMLAB_LOCK_TIMEOUT=1 kn "$A" up lab2 --cidr 10.92.0.1/24 --bridge klla2
t1=$(ms)
t_check "A: second command fails (rc=$KN_RC)" test "$KN_RC" = 1
t_check "A: after waiting about 1 s ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 950 -a $((t1 - t0)) -lt 4000
err_one_line "A: one line naming the holder's pid" "pid $holder"
t_check "A: nothing of lab2 made" bash -c '! ip netns exec "$1" ip link show klla2 >/dev/null 2>&1' _ "$A"

t0=$(ms)
kn "$A" down lab --wait 0.3
t1=$(ms)
t_check "A: --wait 0.3 gives up after about 0.3 s (rc=$KN_RC, $((t1 - t0)) ms)" \
	test "$KN_RC" = 1 -a $((t1 - t0)) -ge 280 -a $((t1 - t0)) -lt 3000
err_one_line "A: --wait message names the pid" "pid $holder"
kn_expect "A: show does not wait for the lock" 0 "$A" show lab

kill -9 "$holder"; wait "$holder" 2>/dev/null
kn_expect "A: tap add right after the holder died" 0 "$A" tap add kla0 --net lab
t_check "A: kla0 enslaved and up" test "$(link_json "$A" kla0 | jq -r '[.master, (.flags | index("UP") != null)] | @tsv')" = "klla	true"
kn_expect "A: down" 0 "$A" down lab
t_finish
