#!/usr/bin/env bash
# A terminal on stdin goes raw while the guest runs and comes back as it
# was on every way out (poweroff, SIGTERM). The oracle is stty on the
# same pseudo-terminal (made by script(1)).
. "$(dirname "$0")/../lib.sh"
t_tiny_kvm "tty tests"
command -v script >/dev/null || { t_skip "tty tests" "no script(1)"; t_finish; }

dir=$(mktemp -d /tmp/kvmlab-tty.XXXXXX)
t_defer "rm -rf '$dir'"
$TINY "$dir/ok.bz" ok
$TINY "$dir/hang.bz" hang

cat >"$dir/inner.sh" <<INNER
ulimit -c 0   # the crash case must leave no core file behind
cd "$dir"
stty -g </dev/tty >"$dir/before"
stty -a </dev/tty | tr ' ' '\n' | grep -x icanon >"$dir/before.a"
"$VM" run --kernel "$dir/ok.bz" --initrd none </dev/tty >"$dir/out1" 2>&1
echo "rc1=\$?" >"$dir/rc"
stty -g </dev/tty >"$dir/after1"
"$VM" run --kernel "$dir/hang.bz" --initrd none </dev/tty >"$dir/out2" 2>&1 &
pid=\$!
for i in \$(seq 50); do grep -q TINY-OK "$dir/out2" && break; sleep 0.1; done
stty -a </dev/tty >"$dir/during"
kill -TERM \$pid
wait \$pid
echo "rc2=\$?" >>"$dir/rc"
stty -g </dev/tty >"$dir/after2"
"$VM" run --kernel "$dir/hang.bz" --initrd none </dev/tty >"$dir/out3" 2>&1 &
pid=\$!
for i in \$(seq 50); do grep -q TINY-OK "$dir/out3" && break; sleep 0.1; done
kill -SEGV \$pid
wait \$pid
echo "rc3=\$?" >>"$dir/rc"
stty -g </dev/tty >"$dir/after3"
INNER
timeout -k 2 60 script -qec "bash $dir/inner.sh" /dev/null </dev/null >/dev/null 2>&1

t_check "poweroff run exits 0 on a tty" grep -qx 'rc1=0' "$dir/rc"
t_check "terminal restored after poweroff" cmp -s "$dir/before" "$dir/after1"
raw_seen() { grep -qw -- "-icanon" "$dir/during" && grep -qw -- "-echo" "$dir/during"; }
t_check "terminal raw while running (-icanon -echo)" raw_seen
t_check "terminal was cooked before (icanon)" grep -q 'icanon' "$dir/before.a"
t_check "SIGTERM run exits 143" grep -qx 'rc2=143' "$dir/rc"
t_check "terminal restored after SIGTERM" cmp -s "$dir/before" "$dir/after2"
t_check "a crash (SIGSEGV) dies of it (139)" grep -qx 'rc3=139' "$dir/rc"
t_check "terminal restored after a crash" cmp -s "$dir/before" "$dir/after3"
t_finish
