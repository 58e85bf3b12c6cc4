#!/usr/bin/env bash
# --console pty: kvmlab-vm makes a pseudo-terminal and names it on
# stderr; a terminal program that opens it sees the guest's output, and
# what it types reaches the guest's COM1 (the tiny echo guest sends it
# back, and powers off at 'q'). Leaving and coming back works: a second
# opener still talks to the guest. Ctrl-A x from the pty quits. The
# observer is the kernel's pty itself, opened by Python (os).
. "$(dirname "$0")/../lib.sh"
t_tiny_kvm "--console pty"
dir=$(mktemp -d /tmp/kvmlab-pty.XXXXXX)
t_defer "rm -rf '$dir'"
python3 "$T_ROOT/tests/cli/tinyguest.py" "$dir/echo.bz" echo
python3 "$T_ROOT/tests/cli/tinyguest.py" "$dir/hang.bz" hang

# term PTY SEND WANT: open the pty raw, send SEND, read until WANT (3 s)
term() {
	python3 - "$@" <<'PY'
import os, sys, time
path, send, want = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
# as it is: kvmlab-vm set it raw (tty.setraw would flush what is waiting)
fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
got, end = b"", time.time() + 3
if send:
    os.write(fd, send)
os.set_blocking(fd, False)
while want not in got and time.time() < end:
    try:
        got += os.read(fd, 4096)
    except BlockingIOError:
        time.sleep(0.02)
    except OSError:
        break
os.close(fd)
print(repr(got))
sys.exit(0 if want in got else 1)
PY
}
# start KIND: kvmlab-vm with --console pty in the background; sets pid, pty
start() {
	"$VM" run --kernel "$dir/$1.bz" --initrd none --console pty </dev/null >"$dir/out" 2>"$dir/err" &
	pid=$!
	t_defer "kill -9 $pid"
	pty=
	for _ in $(seq 50); do
		pty=$(sed -n 's/^kvmlab-vm: console on \(.*\)$/\1/p' "$dir/err")
		[ -n "$pty" ] && break
		sleep 0.1
	done
}

start echo
t_check "stderr names the pty ($pty)" test -c "$pty"
t_check "nothing goes to stdout" test ! -s "$dir/out"
got=$(term "$pty" "" "TINY-ECHO")
t_check "the guest's output reaches a terminal opened on the pty ($got)" test $? = 0
got=$(term "$pty" "abc" "abc")
t_check "typed bytes reach the guest and come back ($got)" test $? = 0
got=$(term "$pty" "xyz" "xyz")
t_check "a second terminal, after the first left, still talks to the guest ($got)" test $? = 0
term "$pty" "q" "q" >/dev/null
for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
wait $pid; rc=$?
t_check "'q' powers the echo guest off: exit 0 ($rc)" test "$rc" = 0
t_check "the pty is gone with the VMM" test ! -e "$pty"

start hang
term "$pty" $'\001x' "no-such-output" >/dev/null
for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
	t_fail "Ctrl-A x typed on the pty quits" "still running"
	kill -9 $pid
else
	wait $pid; rc=$?
	t_check "Ctrl-A x typed on the pty quits: exit 0 ($rc)" test "$rc" = 0
fi
t_finish
