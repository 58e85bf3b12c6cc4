#!/usr/bin/env bash
# kvmlab-net keeps no state in files: under strace, no run of up, tap add,
# lease add/take/release, forward add/del, show, tap del or down creates, writes, renames or removes a file (the
# only writes go to /proc/sys/net/ipv4/ip_forward and /dev/net/tun, and
# the lock is bound in the abstract namespace). Then `ip netns del` right
# after up and tap add takes everything with it: no kvmlab process, no
# file naming the namespace, nothing for the next namespace to inherit.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin
command -v strace >/dev/null || { t_skip "no_files" "strace missing"; exit 0; }

net_new ns nofiles
net_down_at_exit "$ns" lab
tr=$KN_TMP/trace
# st ARGS...: kvmlab-net ARGS under strace, one trace file per run
st() {
	ip netns exec "$ns" strace -f -qq -o "$tr.$1" \
		-e trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,rmdir,mknod,mknodat,truncate,ftruncate,bind \
		"$KVMLAB_NET" "${@:2}" >/dev/null 2>&1
}
st up up lab --cidr 10.99.0.1/24 --bridge klnf --nat --dns 1.1.1.1
st tapadd tap add knf0 knf1 --net lab --queues 2
st leaseadd lease add lab web
st leasetake lease take lab app --pid $$
st fwdadd forward add lab --proto tcp --port 8080 --vm app --to 80
st show show --json
st fwddel forward del lab --proto tcp --port 8080
st leaserel lease release lab app
st tapdel tap del knf1
st down down lab
for f in "$tr".*; do
	run=${f##*.}
	t_check "$run: traced ($(wc -l <"$f") calls)" test -s "$f"
	# writes: O_WRONLY/O_RDWR/O_CREAT/O_TRUNC on anything but the two
	# kernel interfaces kvmlab writes to
	bad=$(grep -E 'open(at|at2)?\(' "$f" | grep -E 'O_(WRONLY|RDWR|CREAT|TRUNC)' |
		grep -vE '"/proc/sys/net/ipv4/ip_forward"|"/dev/net/tun"' | head -3)
	t_check "$run: no file opened for writing ${bad:+($bad)}" test -z "$bad"
	bad=$(grep -E '^[0-9]+ +(creat|mkdir|mkdirat|rename|renameat|renameat2|link|linkat|symlink|symlinkat|unlink|unlinkat|rmdir|mknod|mknodat|truncate|ftruncate)\(' "$f" | head -3)
	t_check "$run: no file made, renamed or removed ${bad:+($bad)}" test -z "$bad"
	bad=$(grep -E '^[0-9]+ +bind\(' "$f" | grep -E 'AF_UNIX' | grep -v 'sun_path=@' | head -3)
	t_check "$run: unix sockets bound in the abstract namespace only ${bad:+($bad)}" test -z "$bad"
done
t_check "the lock is an abstract socket" grep -q 'sun_path=@"kvmlab-net.lock"' "$tr.up"

# ip netns del right after up and tap add: the namespace takes it all
t_netns_new gone nofiles2
marker=$KN_TMP/marker; touch "$marker"
kn_expect "up in a namespace about to go" 0 "$gone" up lab --cidr 10.99.1.1/24 --nat
kn_expect "tap add there" 0 "$gone" tap add kg0 kg1 --net lab
ino=$(stat -L -c %i "/run/netns/$gone")
ip netns del "$gone"
t_check "ip netns del: the namespace is gone" test ! -e "/run/netns/$gone"
left=$(find /run /tmp /var/tmp /dev/shm -xdev -newer "$marker" \( -name "*$ino*" -o -name "*$gone*" \) 2>/dev/null | head -3)
t_check "ip netns del: no file names it (inode $ino) ${left:+($left)}" test -z "$left"
t_check "ip netns del: no kvmlab-net process left" bash -c '! pgrep -f "[k]vmlab-net.*(kg0|10\.99\.1\.1)" >/dev/null'
t_finish
