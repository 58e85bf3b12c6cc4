"""TAP-style result lines for the independent Python peers of the unit
tests (dhcp_peer.py, ctl_peer.py): each check prints "ok - PREFIX: NAME"
or "not ok - PREFIX: NAME # WHY", and failed() says whether any failed.
Standard library only."""
import sys


class Tap:
    def __init__(self, prefix):
        self.prefix = prefix
        self.fails = 0

    def ok(self, cond, name, why=""):
        if cond:
            print(f"ok - {self.prefix}: {name}")
        else:
            self.fails += 1
            print(f"not ok - {self.prefix}: {name}" + (f" # {why}" if why else ""))
        sys.stdout.flush()

    def failed(self):
        return self.fails > 0
