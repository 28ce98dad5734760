#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/: a few well-formed inputs per target so the
fuzzers start from deep paths (valid rings, valid messages, valid region sequences)."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# fuzz_dispatch: [u8 nfds][u64 protocol features][header][payload]
ALL = 0xFFFFFFFFFFFFFFFF
def msg(nfds, feats, req, flags, payload):
    return struct.pack("<BQIII", nfds, feats, req, flags, len(payload)) + payload

write("fuzz_dispatch", "get_features", msg(0, 0, 1, 1, b""))
write("fuzz_dispatch", "set_features", msg(0, 0, 2, 1, struct.pack("<Q", 1 << 32)))
write("fuzz_dispatch", "set_mem_table", msg(1, 0, 5, 1, struct.pack("<II4Q", 1, 0, 0, 0x10000, 0x7f0000000000, 0)))
write("fuzz_dispatch", "set_vring_addr", msg(0, 0, 9, 1, struct.pack("<II4Q", 0, 0, 0x1000, 0x2000, 0x3000, 0)))
write("fuzz_dispatch", "set_vring_kick", msg(1, 0, 12, 1, struct.pack("<Q", 0)))
write("fuzz_dispatch", "get_max_mem_slots", msg(0, 1 << 15, 36, 1, b""))
write("fuzz_dispatch", "add_mem_reg", msg(1, 1 << 15, 37, 9, struct.pack("<5Q", 0, 0x100000, 0x10000, 0x7f0000100000, 0)))
write("fuzz_dispatch", "rem_mem_reg", msg(1, ALL, 38, 1, struct.pack("<5Q", 0, 0x100000, 0x10000, 0x7f0000100000, 0)))
write("fuzz_dispatch", "postcopy_advise", msg(0, ALL, 28, 1, b""))

# fuzz_virtqueue: [ring log2][flags][u16 last_avail][unpop_every][ring_shift] + region A bytes
# Region A (gpa 0x10000): desc table at 0, avail at 0x1000, used at 0x2000; region B at 0x14000.
def ring(size_log2, flags, descs, heads, extra=b"", extra_at=0x3000, used_event=None):
    size = 1 << size_log2
    mem = bytearray(0x4000)
    for i, (addr, length, dflags, nxt) in descs.items():
        struct.pack_into("<QIHH", mem, 16 * i, addr, length, dflags, nxt)
    struct.pack_into("<HH", mem, 0x1000, 0, len(heads))
    for n, h in enumerate(heads):
        struct.pack_into("<H", mem, 0x1000 + 4 + 2 * n, h)
    if used_event is not None:
        struct.pack_into("<H", mem, 0x1000 + 4 + 2 * size, used_event)
    mem[extra_at:extra_at + len(extra)] = extra
    return bytes([size_log2, flags]) + struct.pack("<H", 0) + bytes([0, 0]) + bytes(mem)

NEXT, WRITE, INDIRECT = 1, 2, 4
write("fuzz_virtqueue", "single", ring(3, 0, {0: (0x13000, 64, 0, 0)}, [0]))
write("fuzz_virtqueue", "chain", ring(3, 0, {2: (0x13000, 16, NEXT, 5), 5: (0x13100, 32, NEXT, 1), 1: (0x13200, 8, 0, 0)}, [2]))
write("fuzz_virtqueue", "rx_event_idx", ring(4, 3, {0: (0x13000, 512, WRITE, 0), 1: (0x13400, 512, WRITE, 0)}, [0, 1], used_event=1))
write("fuzz_virtqueue", "spanning", ring(2, 0, {0: (0x13f00, 0x200, 0, 0)}, [0]))
table = struct.pack("<QIHH", 0x13800, 16, NEXT, 1) + struct.pack("<QIHH", 0x13900, 16, 0, 0)
write("fuzz_virtqueue", "indirect", ring(3, 0, {3: (0x13000, len(table), INDIRECT, 0)}, [3], extra=table))

# fuzz_packed_queue: [size-1][flags][u16 last_avail][u16 last_used][ring_shift][n actions]
# + n 8-byte actions [kind][a][u16 b][u32 c] + region A bytes. Region A (gpa 0x10000):
# descriptor ring at 0, driver event area at 0x1000, device event area at 0x1010, tables
# from 0x2000; region B at 0x14000. Actions: 0 pop (a = limit, b = most), 1 push (a%8+1
# buffers from outstanding index b, len c), 2 flush, 3 driver posts (a%4+1 buffers, 0x10
# WRITE, 0x20 indirect; b id; c addr/len), 4 poke, 5 rewind, 6 mark, 7 re-attach.
AVAIL, USED = 0x80, 0x8000
def packed(size, flags, descs, base=0x8000, actions=(), tables=(), event=None):
    mem = bytearray(0x4000)
    for i, (addr, length, ident, dflags) in descs.items():
        struct.pack_into("<QIHH", mem, 16 * i, addr, length, ident, dflags)
    for at, entries in tables:
        for n, (addr, length, dflags) in enumerate(entries):
            struct.pack_into("<QIHH", mem, at - 0x10000 + 16 * n, addr, length, 0, dflags)
    if event is not None:
        struct.pack_into("<HH", mem, 0x1000, *event)  # off_wrap, flags
    script = b"".join(struct.pack("<BBHI", *a) for a in actions)
    return struct.pack("<BBHHBB", size - 1, flags, base, base, 0, len(actions)) + script + bytes(mem)

A = AVAIL  # available in the first lap (wrap counter 1)
write("fuzz_packed_queue", "single", packed(8, 0, {0: (0x13000, 64, 0, A)}))
write("fuzz_packed_queue", "chain", packed(7, 0, {0: (0x13000, 16, 9, A | NEXT), 1: (0x13100, 32, 9, A | NEXT), 2: (0x13200, 8, 3, A)}))
write("fuzz_packed_queue", "indirect", packed(8, 0, {0: (0x12000, 32, 5, A | INDIRECT)},
      tables=[(0x12000, [(0x13800, 16, NEXT), (0x13900, 16, 0)])]))
write("fuzz_packed_queue", "rx_event_idx", packed(16, 3, {0: (0x13000, 512, 0, A | WRITE), 1: (0x13400, 512, 1, A | WRITE)},
      event=(0x8001, 2)))
write("fuzz_packed_queue", "spanning", packed(4, 0, {0: (0x13f00, 0x200, 0, A)}))
write("fuzz_packed_queue", "wrap_base_0", packed(5, 0, {3: (0x13000, 64, 1, USED)}, base=3))
laps = []
for r in range(24):
    laps += [(3, r % 3, r % 5, 0x00100040), (0, 255, 0xffff, 0), (1, 7, r, 100 + r), (2, 0, 0, 0)]
write("fuzz_packed_queue", "laps_event_desc", packed(5, 2, {}, actions=laps, event=(0x8003, 2)))
write("fuzz_packed_queue", "rewind", packed(6, 1, {}, actions=[
    (3, 0x11, 1, 0x00200100), (3, 0x10, 2, 0x00300100), (6, 0, 0, 0), (0, 1, 1, 0), (3, 0x30, 3, 0x00400080),
    (0, 255, 0xffff, 0), (5, 0, 0, 0), (0, 255, 0xffff, 0), (1, 7, 1, 60), (2, 0, 0, 0), (7, 1, 0, 0), (0, 255, 0xffff, 0)]))

# fuzz_memtable: 26-byte records [kind][flags][u16 gpa][u16 uva][u16 size][u16 off][u64 raw][u64 len]
def rec(kind, flags=0, gpa=0, uva=0, size=0, off=0, raw=0, length=0):
    return struct.pack("<BBHHHHQQ", kind, flags, gpa, uva, size, off, raw, length)

write("fuzz_memtable", "add_translate_remove",
      rec(0, 0, 0x10, 0x100, 0x4000) + rec(0, 0x40, 0x14, 0x200, 0x4000, 0x4000) + rec(2, 0, 0, 0, 0x100, 0, 0x3f80)
      + rec(3) + rec(1, 0, 0) + rec(2, 0, 0, 0, 0x10, 0, 0x10) + rec(1, 0, 0))
write("fuzz_memtable", "overlaps",
      rec(0, 0, 0x10, 0x100, 0x4000) + rec(0, 0, 0x12, 0x300, 0x4000) + rec(0, 0, 0x40, 0x102, 0x1000)
      + rec(1, 1, 0) + rec(2, 0, 0x10, 0, 0x10))

# fuzz_config: the --config file's text, then \0 and command-line arguments separated by \0.
def config(text, *args):
    return text.encode() + b"".join(b"\0" + a.encode() for a in args)

with open(os.path.join(HERE, "..", "..", "deploy", "vuswitch.conf"), "rb") as f:
    write("fuzz_config", "sample_conf", f.read())
write("fuzz_config", "ports", config("vhost-user = /run/vm1.sock|vlan=10|mtu=9000\n"
                                     "vhost-user-client = /run/vm2.sock|name=two\n"
                                     "nic = net_af_packet0,iface=eth1|name=up|vlan-mode=trunk|trunks=10,20,100-110\n"
                                     "lcores = 0,1@1,2@1\npin = vm1=1\nrebalance-interval = 0\n"))
write("fuzz_config", "flags", config("", "--vhost-user", "/tmp/a.sock", "--lcores", "0-2", "--pin", "a=0",
                                     "--zero-copy-min=off", "--memory", "128", "--metrics", "off", "--log-level", "debug"))
write("fuzz_config", "both", config("memory = 64\nno-huge = true\n", "--memory", "256", "--nic", "net_null0"))
write("fuzz_config", "placeholder", config("vhost-user = /tmp/%value%.sock\n"))
write("fuzz_config", "placeholder_option", config("%canonical_option% = 1\n"))
write("fuzz_config", "help", config("", "--help"))

# fuzz_control: one request line (the newline is not part of it).
for name, request in [
        ("version", {"cmd": "version"}), ("show_ports", {"cmd": "show_ports"}),
        ("show_port", {"cmd": "show_port", "port": "vm1"}), ("show_fdb", {"cmd": "show_fdb"}),
        ("show_pmd", {"cmd": "show_pmd"}), ("show_config", {"cmd": "show_config"}),
        ("rebalance", {"cmd": "rebalance"}), ("pin", {"cmd": "pin", "port": "vm1", "pmd": 0}),
        ("unpin", {"cmd": "pin", "port": "vm1", "pmd": None}), ("clear_stats", {"cmd": "clear_stats"}),
        ("set_log_level", {"cmd": "set_log_level", "level": "warn"}),
        ("add_port", {"cmd": "add_port", "type": "vhost-user", "target": "/tmp/vm3.sock", "client": True,
                      "name": "vm3", "mtu": 9000, "vlan_mode": "trunk", "trunks": "10,20"}),
        ("add_nic", {"cmd": "add_port", "type": "nic", "target": "net_null0", "vlan": 5}),
        ("del_port", {"cmd": "del_port", "port": "vm3"}), ("reload", {"cmd": "reload"})]:
    write("fuzz_control", name, json.dumps(request).encode())
write("fuzz_control", "not_utf8", b'{"cmd":"\xff"}')
