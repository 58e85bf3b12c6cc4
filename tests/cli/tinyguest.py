#!/usr/bin/env python3
"""Write a tiny bzImage-shaped file for kvmlab-vm tests.

usage: tinyguest.py OUT KIND [--version 0x20f] [--cmdline-size N]
                    [--truncate N] [--no-hdrs]

The protected-mode part holds a few instructions at its 64-bit entry
(offset 0x200): enough to check the VMM's KVM plumbing without a real
kernel. KINDs:
  ok       print "TINY-OK\\n" on COM1, then ACPI S5 (poweroff)
  reboot   print, then i8042 command 0xFE
  acpireset print, then write 1 to the ACPI reset register
  panic    print, then write 1 to pvpanic
  paniclog print "Kernel panic - not syncing: tiny\\n", then halt forever
  triple   print, then ud2 with an empty IDT (triple fault)
  echo     echo COM1 input back until 'q', then poweroff
  hang     print, software-enable the LAPIC, then cli; hlt forever: stuck
           but not stopped (a deadlocked kernel looks like this), so the
           VMM must keep running
  stop     print, then cli; hlt forever with the LAPIC as reset left it
           (software-disabled): stopped for good, as Linux leaves each CPU
           on halt, so the VMM ends with 0
  mmiojump print, then jump into the PCI hole (a fatal KVM exit)
  flood    print "x" forever
  regs     print RSI (the zero page address) as 16 hex digits, poweroff
"""
import argparse
import struct
import sys

COM1 = 0x3f8


def mov_dx(port):
    return b"\x66\xba" + struct.pack("<H", port)


def out_str(s):
    code = mov_dx(COM1)
    for ch in s.encode():
        code += bytes([0xb0, ch, 0xee])  # mov al, ch; out dx, al
    return code


def out_byte(port, val):
    return mov_dx(port) + bytes([0xb0, val, 0xee])


HALT = b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp back to hlt

# print rsi as 16 hex digits: rcx=16; loop { rol rsi,4; al=sil&15; al+='0';
# cmp al,'9'; jbe +2; add al,7; out dx,al; dec rcx; jnz }
REGS = (mov_dx(COM1) +
        b"\xb9\x10\x00\x00\x00"      # mov ecx, 16
        b"\x48\xc1\xc6\x04"          # rol rsi, 4
        b"\x40\x88\xf0"              # mov al, sil
        b"\x24\x0f"                  # and al, 15
        b"\x04\x30"                  # add al, '0'
        b"\x3c\x39"                  # cmp al, '9'
        b"\x76\x02"                  # jbe +2
        b"\x04\x07"                  # add al, 7
        b"\xee"                      # out dx, al
        b"\xff\xc9"                  # dec ecx
        b"\x75\xe8")                 # jnz back to rol

# echo: in al,(dx=0x3fd); test al,1; jz; in al,(0x3f8); out; cmp 'q'; jne
ECHO = (b"\x66\xba\xfd\x03"          # mov dx, 0x3fd
        b"\xec"                      # in al, dx
        b"\xa8\x01"                  # test al, 1
        b"\x74\xfb"                  # jz back to in
        b"\x66\xba\xf8\x03"          # mov dx, 0x3f8
        b"\xec"                      # in al, dx
        b"\xee"                      # out dx, al
        b"\x3c\x71"                  # cmp al, 'q'
        b"\x75\xed")                 # jne back to mov dx,0x3fd

POWEROFF = out_byte(0x600, 0x34) + HALT  # SLP_EN | SLP_TYP 5

# the LAPIC's spurious-interrupt vector register (xAPIC MMIO, identity
# mapped): vector 0xff with the software-enable bit
APIC_ON = (b"\xb8\xf0\x00\xe0\xfe"      # mov eax, 0xfee000f0
           b"\xc7\x00\xff\x01\x00\x00")  # mov dword [rax], 0x1ff

KINDS = {
    "ok": out_str("TINY-OK\n") + POWEROFF,
    "reboot": out_str("TINY-OK\n") + out_byte(0x64, 0xfe) + HALT,
    "acpireset": out_str("TINY-OK\n") + out_byte(0x602, 1) + HALT,
    "panic": out_str("TINY-OK\n") + out_byte(0x505, 1) + HALT,
    "paniclog": out_str("Kernel panic - not syncing: tiny\n") + HALT,
    "triple": out_str("TINY-OK\n") + b"\x0f\x0b" + HALT,
    "echo": out_str("TINY-ECHO\n") + ECHO + out_str("\n") + POWEROFF,
    "hang": out_str("TINY-OK\n") + APIC_ON + HALT,
    "stop": out_str("TINY-OK\n") + HALT,
    # fetch code from the PCI hole (no RAM, no device): KVM cannot run it
    "mmiojump": out_str("TINY-OK\n") + b"\x48\xb8" + struct.pack("<Q", 0xc0000000) + b"\xff\xe0",
    # print "x" forever: fills any pipe that is not read
    "flood": mov_dx(COM1) + b"\xb0\x78\xee\xeb\xfb",
    "regs": REGS + out_str("\n") + POWEROFF,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--version", type=lambda s: int(s, 0), default=0x20f)
    ap.add_argument("--cmdline-size", type=int, default=2047)
    ap.add_argument("--truncate", type=int, default=None)
    ap.add_argument("--no-hdrs", action="store_true")
    a = ap.parse_args()

    setup_sects = 1
    setup = bytearray(512 * (setup_sects + 1))
    pm = bytearray(0x200) + KINDS[a.kind]
    pm += bytes(-len(pm) % 16)
    struct.pack_into("<B", setup, 0x1f1, setup_sects)
    struct.pack_into("<I", setup, 0x1f4, len(pm) // 16)       # syssize
    struct.pack_into("<H", setup, 0x1fe, 0xaa55)
    setup[0x200:0x202] = bytes([0xeb, 0x66])                  # jump over the header
    if not a.no_hdrs:
        setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, a.version)
    struct.pack_into("<B", setup, 0x211, 0x01)                # LOADED_HIGH
    struct.pack_into("<I", setup, 0x22c, 0x7fffffff)          # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, 0x200000)            # kernel_alignment
    struct.pack_into("<B", setup, 0x234, 1)                   # relocatable
    struct.pack_into("<H", setup, 0x236, 0x03)                # XLF_KERNEL_64 | above 4G
    struct.pack_into("<I", setup, 0x238, a.cmdline_size)
    struct.pack_into("<Q", setup, 0x258, 0x100000)            # pref_address
    struct.pack_into("<I", setup, 0x260, 0x10000)             # init_size
    img = bytes(setup) + bytes(pm)
    if a.truncate is not None:
        img = img[:a.truncate]
    with open(a.out, "wb") as f:
        f.write(img)


if __name__ == "__main__":
    sys.exit(main())
