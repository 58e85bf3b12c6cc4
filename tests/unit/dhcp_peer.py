#!/usr/bin/env python3
"""The independent side of the DHCP unit test: builds DHCP requests (as a
client would put them on the wire) and parses vmm/dhcp.c's replies,
checksums included, from RFC 2131/2132 and RFC 791/768 alone. Standard
library only. Usage: dhcp_peer.py SERVER (SERVER speaks the line protocol
of tests/unit/vmm_dhcp_peer.c). Prints TAP-style lines."""
import ipaddress
import struct
import subprocess
import sys

from tap_lines import Tap

T = Tap("dhcp peer")
ok = T.ok


def ip(s):
    return int(ipaddress.IPv4Address(s))


def ipb(s):
    return ipaddress.IPv4Address(s).packed


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


GUEST = "52:54:00:12:34:56"
OTHER = "52:54:00:99:99:99"
BRIDGE = "0a:0b:0c:0d:0e:0f"
ADDR, ROUTER, PREFIX = "10.20.30.77", "10.20.30.1", 24
DNS = ["10.20.30.1", "192.0.2.53"]
HOST = "web-1"
LEASE = 7200
MTU = 1400

# message types (RFC 2132 9.6)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)


def opt(code, val):
    return bytes([code, len(val)]) + val


def bootp(opts=b"", *, xid=0x1234ABCD, flags=0, ciaddr="0.0.0.0", chaddr=GUEST,
          giaddr="0.0.0.0", sname=b"", file=b"", op=1, cookie=True, end=True):
    m = struct.pack("!BBBBIHH", op, 1, 6, 0, xid, 3, flags)
    m += ipb(ciaddr) + ipb("0.0.0.0") + ipb("0.0.0.0") + ipb(giaddr)
    m += mac(chaddr).ljust(16, b"\0")
    m += sname.ljust(64, b"\0") + file.ljust(128, b"\0")
    if cookie:
        m += bytes([99, 130, 83, 99])
    m += opts + (b"\xff" if end else b"")
    return m


def udp_ip(payload, *, src="0.0.0.0", dst="255.255.255.255", sport=68, dport=67,
           ulen=None, ipopts=b"", frag=0, bad_ipsum=False, tot_extra=0, proto=17):
    ulen = 8 + len(payload) if ulen is None else ulen
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    pseudo = ipb(src) + ipb(dst) + struct.pack("!BBH", 0, 17, len(u))
    c = csum(pseudo + u) or 0xFFFF
    u = u[:6] + struct.pack("!H", c) + u[8:]
    ihl = 5 + len(ipopts) // 4
    h = struct.pack("!BBHHHBBH", 0x40 | ihl, 0, ihl * 4 + len(u) + tot_extra, 7, frag,
                    64, proto, 0) + ipb(src) + ipb(dst) + ipopts
    s = csum(h) ^ (0x5555 if bad_ipsum else 0)
    h = h[:10] + struct.pack("!H", s) + h[12:]
    return h + u


def eth(payload, *, src=GUEST, dst="ff:ff:ff:ff:ff:ff", etype=0x0800, vlan=None):
    h = mac(dst) + mac(src)
    if vlan is not None:
        h += struct.pack("!HH", 0x8100, vlan)
    return h + struct.pack("!H", etype) + payload


def dhcp_frame(mtype, extra=b"", *, bootp_kw=None, ip_kw=None, eth_kw=None):
    b = bootp(opt(53, bytes([mtype])) + extra, **(bootp_kw or {}))
    return eth(udp_ip(b, **(ip_kw or {})), **(eth_kw or {}))


def parse_reply(f):
    """Everything a client checks, from the bytes alone. Raises on any
    malformation."""
    r = {}
    assert len(f) >= 14 + 20 + 8 + 240, "reply too short"
    r["eth_dst"], r["eth_src"] = f[0:6], f[6:12]
    assert struct.unpack("!H", f[12:14])[0] == 0x0800
    iph = f[14:34]
    assert iph[0] == 0x45, "IPv4 without options"
    assert csum(iph) == 0, "IP header checksum"
    tot = struct.unpack("!H", iph[2:4])[0]
    assert tot == len(f) - 14, "IP total length"
    assert iph[9] == 17
    assert struct.unpack("!H", iph[6:8])[0] & 0x3FFF == 0, "not a fragment"
    r["ip_src"], r["ip_dst"] = str(ipaddress.IPv4Address(iph[12:16])), str(ipaddress.IPv4Address(iph[16:20]))
    u = f[34:]
    sport, dport, ulen, uc = struct.unpack("!HHHH", u[:8])
    assert (sport, dport) == (67, 68), "ports"
    assert ulen == len(u), "UDP length"
    assert uc != 0, "UDP checksum present"
    pseudo = iph[12:20] + struct.pack("!BBH", 0, 17, ulen)
    assert csum(pseudo + u) == 0, "UDP checksum"
    b = u[8:]
    assert len(b) >= 300, "BOOTP minimum 300 bytes"
    op, htype, hlen, hops, xid, secs, flags = struct.unpack("!BBBBIHH", b[:12])
    assert (op, htype, hlen, hops) == (2, 1, 6, 0)
    r["xid"], r["flags"] = xid, flags
    r["ciaddr"], r["yiaddr"], r["siaddr"], r["giaddr"] = (
        str(ipaddress.IPv4Address(b[i:i + 4])) for i in (12, 16, 20, 24))
    r["chaddr"] = b[28:44]
    assert b[236:240] == bytes([99, 130, 83, 99]), "magic cookie"
    o, i, opts = b[240:], 0, {}
    while True:
        assert i < len(o), "options end without option 255"
        c = o[i]
        if c == 0:
            i += 1
            continue
        if c == 255:
            break
        n = o[i + 1]
        assert i + 2 + n <= len(o), "option past the end"
        assert c not in opts, f"option {c} twice"
        opts[c] = o[i + 2:i + 2 + n]
        i += 2 + n
    r["opts"] = opts
    return r


def u32(v):
    return struct.unpack("!I", v)[0]


class Server:
    def __init__(self, path):
        self.p = subprocess.Popen([path, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        if not out:
            raise SystemExit("not ok - dhcp peer: the server died")
        return out.strip()

    def lease(self, **kw):
        a = dict(mac=GUEST, addr=ADDR, router=ROUTER, prefix=PREFIX, mtu=MTU,
                 dns=",".join(DNS) or "-", host=HOST, lt=LEASE)
        a.update(kw)
        return self.cmd("lease {mac} {addr} {router} {prefix} {mtu} {dns} {host} {lt}".format(**a))

    def send(self, frame, cap=None):
        v, h = self.cmd(f"frame {frame.hex() or '-'}" + (f" {cap}" if cap else "")).split()
        return int(v), (None if h == "-" else bytes.fromhex(h))


PASS, REPLY, DROP = 0, 1, 2


def expect_reply(srv, name, frame):
    v, rep = srv.send(frame)
    if v != REPLY or rep is None:
        ok(False, name, f"verdict {v}, no reply")
        return None
    try:
        return parse_reply(rep)
    except AssertionError as e:
        ok(False, name, f"malformed reply: {e}")
        return None


def main():
    srv = Server(sys.argv[1])
    ok(srv.lease() == "ok", "lease accepted")

    # --- DISCOVER -> OFFER, broadcast flag set
    r = expect_reply(srv, "discover (broadcast flag)", dhcp_frame(
        DISCOVER, opt(55, bytes([1, 3, 6, 12, 15, 26, 28, 51, 54, 58, 59])),
        bootp_kw=dict(flags=0x8000)))
    if r:
        o = r["opts"]
        ok(o.get(53) == bytes([OFFER]), "offer: message type 2")
        ok(r["yiaddr"] == ADDR, "offer: yiaddr is the lease's", r["yiaddr"])
        ok(r["ciaddr"] == "0.0.0.0", "offer: ciaddr 0")
        ok(r["xid"] == 0x1234ABCD and r["flags"] == 0x8000, "offer: xid and flags echoed")
        ok(r["chaddr"][:6] == mac(GUEST), "offer: chaddr echoed")
        ok(r["eth_dst"] == b"\xff" * 6 and r["ip_dst"] == "255.255.255.255",
           "offer: broadcast flag honoured (Ethernet and IP broadcast)")
        ok(r["ip_src"] == ROUTER, "offer: IP source is the server id", r["ip_src"])
        ok(not r["eth_src"][0] & 1, "offer: unicast Ethernet source")
        ok(o.get(54) == ipb(ROUTER), "option 54 server id = router")
        ok(o.get(1) == ipb("255.255.255.0"), "option 1 subnet mask")
        ok(o.get(3) == ipb(ROUTER), "option 3 router")
        ok(o.get(6) == b"".join(ipb(d) for d in DNS), "option 6 DNS servers in order")
        ok(o.get(12) == HOST.encode(), "option 12 host name", repr(o.get(12)))
        ok(o.get(28) == ipb("10.20.30.255"), "option 28 broadcast address")
        ok(o.get(26) == struct.pack("!H", MTU), "option 26 interface MTU")
        ok(o.get(51) and u32(o[51]) == LEASE, "option 51 lease time")
        ok(o.get(58) and u32(o[58]) == LEASE // 2, "option 58 T1 = lease/2")
        ok(o.get(59) and u32(o[59]) == LEASE * 7 // 8, "option 59 T2 = 7/8 lease")

    # --- DISCOVER without the broadcast flag: unicast to the client's MAC
    r = expect_reply(srv, "discover (unicast)", dhcp_frame(DISCOVER))
    if r:
        ok(r["eth_dst"] == mac(GUEST) and r["ip_dst"] == ADDR,
           "offer without broadcast flag goes to chaddr / yiaddr", f"{r['eth_dst'].hex()} {r['ip_dst']}")

    # --- REQUEST, SELECTING
    sel = opt(54, ipb(ROUTER)) + opt(50, ipb(ADDR))
    r = expect_reply(srv, "request selecting", dhcp_frame(REQUEST, sel, bootp_kw=dict(flags=0x8000)))
    if r:
        ok(r["opts"].get(53) == bytes([ACK]) and r["yiaddr"] == ADDR, "selecting: ACK with yiaddr")
        ok(u32(r["opts"][51]) == LEASE, "selecting: ACK carries the lease time")
    r = expect_reply(srv, "request selecting, wrong address", dhcp_frame(
        REQUEST, opt(54, ipb(ROUTER)) + opt(50, ipb("10.20.30.99"))))
    if r:
        o = r["opts"]
        ok(o.get(53) == bytes([NAK]), "selecting wrong address: NAK")
        ok(r["yiaddr"] == "0.0.0.0" and 51 not in o and 1 not in o and o.get(54) == ipb(ROUTER),
           "NAK: no yiaddr, no lease options, server id present")
        ok(r["eth_dst"] == b"\xff" * 6 and r["ip_dst"] == "255.255.255.255", "NAK is broadcast")
    v, rep = srv.send(dhcp_frame(REQUEST, opt(54, ipb("10.20.30.254")) + opt(50, ipb(ADDR))))
    ok(v == DROP and rep is None, "selecting another server: consumed, silent", f"verdict {v}")

    # --- INIT-REBOOT
    r = expect_reply(srv, "init-reboot", dhcp_frame(REQUEST, opt(50, ipb(ADDR))))
    if r:
        ok(r["opts"].get(53) == bytes([ACK]), "init-reboot, own address: ACK")
    r = expect_reply(srv, "init-reboot foreign", dhcp_frame(REQUEST, opt(50, ipb("192.168.1.5"))))
    if r:
        ok(r["opts"].get(53) == bytes([NAK]), "init-reboot, foreign address: NAK")

    # --- RENEWING: unicast to the server, at the bridge's MAC
    r = expect_reply(srv, "renewing", dhcp_frame(
        REQUEST, bootp_kw=dict(ciaddr=ADDR), ip_kw=dict(src=ADDR, dst=ROUTER),
        eth_kw=dict(dst=BRIDGE)))
    if r:
        ok(r["opts"].get(53) == bytes([ACK]), "renewing: ACK")
        ok(r["ip_dst"] == ADDR and r["eth_dst"] == mac(GUEST), "renewing: unicast to ciaddr")
        ok(r["ciaddr"] == ADDR and r["yiaddr"] == ADDR, "renewing: ciaddr echoed, yiaddr set")
        ok(r["eth_src"] == mac(BRIDGE), "renewing: answered from the MAC the guest addressed")
    # --- REBINDING: broadcast, ciaddr set
    r = expect_reply(srv, "rebinding", dhcp_frame(REQUEST, bootp_kw=dict(ciaddr=ADDR),
                                                  ip_kw=dict(src=ADDR)))
    if r:
        ok(r["opts"].get(53) == bytes([ACK]) and r["ip_dst"] == ADDR, "rebinding: ACK to ciaddr")
    r = expect_reply(srv, "renewing foreign", dhcp_frame(
        REQUEST, bootp_kw=dict(ciaddr="10.20.30.5"), ip_kw=dict(src="10.20.30.5", dst=ROUTER)))
    if r:
        ok(r["opts"].get(53) == bytes([NAK]), "renewing a foreign address: NAK")
    v, rep = srv.send(dhcp_frame(REQUEST))
    ok(v == DROP and rep is None, "request with neither address nor ciaddr: dropped")

    # --- RELEASE, DECLINE: consumed without a reply
    v, rep = srv.send(dhcp_frame(RELEASE, opt(54, ipb(ROUTER)), bootp_kw=dict(ciaddr=ADDR),
                                 ip_kw=dict(src=ADDR, dst=ROUTER)))
    ok(v == DROP and rep is None, "release: consumed, no reply")
    v, rep = srv.send(dhcp_frame(DECLINE, opt(54, ipb(ROUTER)) + opt(50, ipb(ADDR))))
    ok(v == DROP and rep is None, "decline: consumed, no reply")

    # --- INFORM
    r = expect_reply(srv, "inform", dhcp_frame(INFORM, bootp_kw=dict(ciaddr=ADDR),
                                               ip_kw=dict(src=ADDR)))
    if r:
        o = r["opts"]
        ok(o.get(53) == bytes([ACK]), "inform: ACK")
        ok(r["yiaddr"] == "0.0.0.0" and 51 not in o and 58 not in o and 59 not in o,
           "inform: no yiaddr, no lease/T1/T2")
        ok(o.get(3) == ipb(ROUTER) and o.get(6) == b"".join(ipb(d) for d in DNS),
           "inform: configuration options present")
        ok(r["ip_dst"] == ADDR and r["ciaddr"] == ADDR, "inform: to ciaddr")

    # --- who it is for
    v, _ = srv.send(dhcp_frame(DISCOVER, eth_kw=dict(src=OTHER)))
    ok(v == DROP, "discover from another Ethernet source: consumed, unanswered")
    v, _ = srv.send(dhcp_frame(DISCOVER, bootp_kw=dict(chaddr=OTHER)))
    ok(v == DROP, "discover naming another chaddr: consumed, unanswered")
    v, _ = srv.send(dhcp_frame(DISCOVER, eth_kw=dict(vlan=5)))
    ok(v == PASS, "802.1Q-tagged discover passes (another segment)")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(dst="198.51.100.7")))
    ok(v == PASS, "DHCP unicast to some other server passes")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(dst="10.20.30.255")))
    ok(v == REPLY, "discover to the subnet broadcast: answered")
    v, _ = srv.send(eth(udp_ip(b"\x12\x34" + b"\0" * 30, dport=53, dst=ROUTER, src=ADDR)))
    ok(v == PASS, "DNS to the router passes")
    v, _ = srv.send(eth(bytes(28), etype=0x0806))
    ok(v == PASS, "ARP passes")
    v, _ = srv.send(eth(bytes(60), etype=0x86DD))
    ok(v == PASS, "IPv6 passes")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01")), proto=6)))
    ok(v == PASS, "TCP to port 67 passes")
    v, _ = srv.send(bytes(10))
    ok(v == PASS, "a 10-byte runt passes")

    # --- hostile and unusual encodings
    r = expect_reply(srv, "overload file", eth(udp_ip(bootp(
        opt(52, b"\x01"), file=opt(53, bytes([DISCOVER])) + b"\xff"))))
    ok(r is not None and r["opts"].get(53) == bytes([OFFER]), "option 52=1: type read from file")
    r = expect_reply(srv, "overload sname", eth(udp_ip(bootp(
        opt(52, b"\x02"), sname=opt(53, bytes([DISCOVER])) + b"\xff"))))
    ok(r is not None and r["opts"].get(53) == bytes([OFFER]), "option 52=2: type read from sname")
    r = expect_reply(srv, "overload both", eth(udp_ip(bootp(
        opt(52, b"\x03") + opt(53, bytes([REQUEST])), file=opt(50, ipb(ADDR)) + b"\xff",
        sname=opt(54, ipb(ROUTER)) + b"\xff"))))
    ok(r is not None and r["opts"].get(53) == bytes([ACK]), "option 52=3: request spread over file and sname")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01"), sname=opt(53, b"\x01")))))
    ok(v == REPLY, "options in sname without overload are ignored")
    v, _ = srv.send(eth(udp_ip(bootp(opt(52, b"\x01"), file=b"\x35\x05\x01"))))
    ok(v == DROP, "overloaded file with an option running off its end: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(b"\0\0\0" + opt(53, b"\x01") + b"\0\0"))))
    ok(v == REPLY, "pad options around the type: answered")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01"), end=False))))
    ok(v == REPLY, "no end option: the UDP payload's end ends the options")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01") + b"\x0c\x20abc", end=False))))
    ok(v == DROP, "option length past the payload: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01") + b"\x0c", end=False))))
    ok(v == DROP, "option code without its length byte: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01") + opt(53, b"\x03")))))
    ok(v == DROP, "two message types: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01\x01")))))
    ok(v == DROP, "message type of length 2: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(12, b"x" * 255)))))
    ok(v == DROP, "no message type (plain BOOTP): dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01"), cookie=False))))
    ok(v == DROP, "no magic cookie: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01"), op=2))))
    ok(v == DROP, "a BOOTREPLY from the guest: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x01"), giaddr="10.20.30.9"))))
    ok(v == DROP, "relayed (giaddr set): dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x02")))))
    ok(v == DROP, "an OFFER from the guest: dropped")
    v, _ = srv.send(eth(udp_ip(bootp(opt(53, b"\x63")))))
    ok(v == DROP, "unknown message type 99: dropped")
    big = opt(53, b"\x01") + b"".join(opt(200 + i % 50, bytes(255)) for i in range(30))
    v, rep = srv.send(eth(udp_ip(bootp(big))))
    ok(v == REPLY and rep is not None and len(rep) <= 600, "a 7.9 KB DISCOVER: answered with a small reply")
    v, _ = srv.send(dhcp_frame(DISCOVER) + bytes(18))
    ok(v == REPLY, "Ethernet padding after the IP packet: answered")
    r = expect_reply(srv, "ip options", dhcp_frame(DISCOVER, ip_kw=dict(ipopts=b"\x94\x04\0\0")))
    ok(r is not None, "IPv4 header with options (router alert): answered")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(bad_ipsum=True)))
    ok(v == DROP, "bad IPv4 header checksum: dropped")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(frag=0x2000)))
    ok(v == DROP, "first fragment (MF): dropped, no reassembly")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(frag=0x0010)))
    ok(v == PASS, "later fragment: passes (nothing to judge it by)")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(ulen=2000)))
    ok(v == DROP, "UDP length beyond the IP packet: dropped")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(ulen=7)))
    ok(v == DROP, "UDP length below its header: dropped")
    v, _ = srv.send(dhcp_frame(DISCOVER, ip_kw=dict(tot_extra=100)))
    ok(v == DROP, "IP total length beyond the frame: dropped")
    full = dhcp_frame(DISCOVER)
    trunc_ok = all(srv.send(full[:n])[0] != REPLY for n in range(0, len(full) - 8, 7))
    ok(trunc_ok, "every truncation of a DISCOVER: never answered")
    v, rep = srv.send(full, cap=100)
    ok(v == DROP and rep is None, "reply room too small: consumed, nothing written")

    # --- lease variants: no DNS, no host name, default lease time, /30
    ok(srv.lease(dns="-", host="-", lt=0, mtu=0) == "ok", "lease without DNS/host name/MTU accepted")
    r = expect_reply(srv, "minimal lease", dhcp_frame(DISCOVER))
    if r:
        o = r["opts"]
        ok(6 not in o and 12 not in o and 26 not in o, "no DNS, host name or MTU options when none")
        ok(u32(o[51]) == 3600, "lease time 0 means the 3600 s default")
    ok(srv.lease(addr="10.20.30.2", router="10.20.30.1", prefix=30) == "ok", "/30 lease accepted")
    r = expect_reply(srv, "/30", dhcp_frame(DISCOVER))
    if r:
        ok(r["opts"].get(1) == ipb("255.255.255.252") and r["opts"].get(28) == ipb("10.20.30.3"),
           "/30: mask and broadcast")
    ok(srv.lease(addr="10.20.31.2") == "bad", "lease outside the router's subnet refused")
    ok(srv.lease(addr=ROUTER) == "bad", "lease on the router's address refused")
    ok(srv.lease(addr="10.20.30.255") == "bad", "lease on the broadcast address refused")
    ok(srv.lease(prefix=31) == "bad", "prefix 31 refused")
    ok(srv.lease(mac="01:00:5e:00:00:01") == "bad", "multicast MAC refused")
    srv.p.stdin.close()
    srv.p.wait()
    ok(srv.p.returncode == 0, "server exited cleanly")
    return 1 if T.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
