#!/usr/bin/env python3
"""The independent side of the control-socket unit test: a client written
from the protocol in vmm/ctl.h alone (python3 standard library), against
vmm/ctl.c served by tests/unit/vmm_ctl.c. It plays well-behaved and
hostile clients and prints TAP-style lines.
Usage: ctl_peer.py NAME (the server's VM name)."""
import json
import os
import socket
import sys
import time

from tap_lines import Tap

T = Tap("ctl peer")
ok = T.ok
NAME = sys.argv[1]
ADDR = "\0kvmlab-vm/" + NAME


def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(ADDR)
    return s


def call(s, obj):
    s.send(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    return json.loads(s.recv(65536))


def closed(s):
    """True once the server has closed s (EOF or reset) within 5 s."""
    s.settimeout(5)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# the kernel's own table: a listening SOCK_SEQPACKET (type 5, flag
# __SO_ACCEPTCON 0x10000) at @kvmlab-vm/NAME
with open("/proc/net/unix") as f:
    rows = [ln.split() for ln in f.readlines()[1:]]
mine = [r for r in rows if len(r) >= 8 and r[7] == "@kvmlab-vm/" + NAME]
ok(len(mine) == 1 and int(mine[0][3], 16) & 0x10000 and int(mine[0][4], 16) == 5,
   "/proc/net/unix: one listening SOCK_SEQPACKET at @kvmlab-vm/NAME", str(mine))

s = conn()
r = call(s, {"cmd": "status"})
st = r.get("status", {})
ok(r.get("ok") is True and st.get("name") == NAME and st.get("cpus") == 3,
   "status: ok, the name and the served object", str(r))
r = call(s, {"cmd": "powerdown"})
ok(r == {"ok": True}, "powerdown: ok", str(r))
r = call(s, {"cmd": "pause"})
r2 = call(s, {"cmd": "pause"})
ok(r == {"ok": True} and r2.get("ok") is False and "already" in r2.get("error", ""),
   "pause: ok, then 'paused already'", f"{r} {r2}")
r = call(s, {"cmd": "resume"})
r2 = call(s, {"cmd": "resume"})
ok(r == {"ok": True} and r2.get("ok") is False and "not paused" in r2.get("error", ""),
   "resume: ok, then 'not paused'", f"{r} {r2}")
r = call(s, {"cmd": "reboot-the-host"})
ok(r.get("ok") is False and "unknown" in r.get("error", ""), "unknown cmd: refused", str(r))
for bad, what in ((b"{not json", "not JSON"), (b"[1,2]", "an array"),
                  (b'{"cmd": 7}', "cmd not a string"), (b'{"cmd":"status","cmd":"quit"}',
                  "a duplicate key"), (b"\0\0\0", "NUL bytes")):
    r = call(s, bad)
    ok(r.get("ok") is False and r.get("error"), f"{what}: refused with an error", str(r))
r = call(s, b'{"cmd":"status","pad":"' + b"x" * 5000 + b'"}')
ok(r.get("ok") is False and "too long" in r.get("error", ""), "a 5 KB request: too long", str(r))
r = call(s, {"cmd": "status"})
ok(r.get("ok") is True, "the same connection still served after the refusals", str(r))

# more connections than the server holds: the extra one is closed
held = [conn() for _ in range(7)]  # with s: 8, the limit
extra = conn()
ok(closed(extra), "a 9th connection is closed by the server")
for h in held:
    ok_h = call(h, {"cmd": "status"}).get("ok") is True
    if not ok_h:
        break
ok(ok_h, "the 8 held connections are all served")
for h in held:
    h.close()
time.sleep(0.2)
n = conn()
ok(call(n, {"cmd": "status"}).get("ok") is True, "once they close, a new one is served")
n.close()

# a client that sends and never reads: the server must drop it, not
# wait for it (its replies would fill this socket's queue)
lazy = conn()
lazy.setblocking(False)
sent = 0
t0 = time.time()
while time.time() - t0 < 10 and sent < 5000:
    try:
        lazy.send(b'{"cmd":"status"}')
        sent += 1
    except BlockingIOError:
        time.sleep(0.01)
    except (BrokenPipeError, ConnectionResetError):
        break
got = 0
lazy.settimeout(2)
eof = False
try:
    while True:
        b = lazy.recv(65536)
        if not b:
            eof = True
            break
        got += 1
except (ConnectionResetError, BrokenPipeError):
    eof = True
except socket.timeout:
    pass
ok(eof and got < sent, f"a client that does not read is dropped ({got} replies of {sent} sent)",
   f"eof {eof}")
lazy.close()
ok(call(s, {"cmd": "status"}).get("ok") is True, "the first connection is still served after that")

# only root and the server's user: another uid is refused
if os.geteuid() == 0:
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            c = conn()
            try:
                # the server may have refused and closed already
                c.send(b'{"cmd":"quit"}')
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                b = c.recv(65536)
            except ConnectionResetError:
                # the server closed with our request unread: the reset
                # comes first, its reason is still queued behind it
                b = c.recv(65536)
            r = json.loads(b)
            refused = r.get("ok") is False and "permission" in r.get("error", "")
            os._exit(0 if refused and closed(c) else 1)
        except Exception:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    ok(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
       "uid 65534: refused (permission denied) and closed, even for quit", f"status {status}")
    r = call(s, {"cmd": "status"})
    ok(r.get("ok") is True, "the VM still runs after the refused quit", str(r))
else:
    print("ok - ctl peer: another uid refused # SKIP not root")

# quit: answered, then the connection closes when the server is gone
r = call(s, {"cmd": "quit"})
ok(r == {"ok": True}, "quit: ok", str(r))
ok(closed(s), "the connection closes once the server is gone")
sys.exit(1 if T.failed() else 0)
