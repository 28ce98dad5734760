#!/usr/bin/env python3
"""Frames for tests/system/virtio_matrix.sh: generate them, and compare what arrived.

  pcap_compare.py gen --dir DIR --frames N --round R --queues Q --flows F
                      --sizes "60 64 1514" --src-mac MAC --dst-mac MAC [--seed S]
      Writes DIR/sent.pcap (every frame, in sending order), DIR/empty.pcap (no frame)
      and DIR/r<K>_q<Q>.pcap: round K's frames for sender queue Q. Prints the number
      of rounds and the total bytes. A flow always goes to the same sender queue (flow % Q), so the order
      of a flow's frames is the order the sender transmits them in.

  pcap_compare.py compare --sent DIR/sent.pcap [--min-queues K] OUT0.pcap OUT1.pcap ...
      OUTi.pcap holds what the receiver got on its RX queue i. Checks that every
      sent frame arrived exactly once, byte-identical; nothing else arrived; each
      flow arrived on one RX queue, in sending order; at least K RX queues got
      frames. Exit 0 if all holds, 1 otherwise (with what went wrong).

Frame i (i = sequence number over the whole run) is Ethernet/IPv4/UDP, its flow
picked from F (source IP, source port and destination port depend on the flow), its
length from --sizes (bytes on the wire without FCS, 60..), then from offset 42:
  "VUSM" | flow u16 | seq u32 | per-flow seq u32 | length u16 | pattern bytes
with pattern byte j = (seq * 31 + j * 7) & 0xff, so a shifted, truncated, swapped or
stale buffer shows up as a difference. No external module (pcap is a trivial format).
"""
import argparse
import collections
import os
import random
import struct
import sys

MAGIC = b"VUSM"
HDR = 42  # Ethernet 14 + IPv4 20 + UDP 8
TAG = struct.Struct("!4sHIIH")  # 16 bytes, fits the 18 payload bytes of a 60 B frame
PCAP_HDR = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
REC = struct.Struct("<IIII")


def mac(s):
    b = bytes(int(x, 16) for x in s.split(":"))
    if len(b) != 6:
        raise SystemExit("bad MAC %r" % s)
    return b


def ip_checksum(h):
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(dst, src, flow, seq, fseq, length):
    if length < 60:
        raise SystemExit("frame length %d < 60" % length)
    ip_len = length - 14
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, seq & 0xFFFF, 0, 64, 17, 0,
                               bytes((10, 1, flow >> 8, flow & 0xFF)), bytes((10, 2, 0, 1))))
    struct.pack_into("!H", ip, 10, ip_checksum(bytes(ip)))
    udp = struct.pack("!HHHH", 1024 + flow, 2048 + (flow * 7) % 101, ip_len - 20, 0)
    body = TAG.pack(MAGIC, flow, seq, fseq, length)
    n = length - HDR - len(body)
    pat = bytes(((seq * 31 + j * 7) & 0xFF) for j in range(n))
    return dst + src + b"\x08\x00" + bytes(ip) + udp + body + pat


def tag(f):
    """(flow, seq, fseq) of a frame we generated, or None."""
    if len(f) < HDR + TAG.size:
        return None
    m, flow, seq, fseq, length = TAG.unpack_from(f, HDR)
    return (flow, seq, fseq) if m == MAGIC else None


def write_pcap(path, frames):
    with open(path, "wb") as out:
        out.write(PCAP_HDR)
        for i, f in enumerate(frames):
            out.write(REC.pack(i // 1000000, i % 1000000, len(f), len(f)))
            out.write(f)


def read_pcap(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 24:
        raise SystemExit("%s: no pcap header (%d bytes)" % (path, len(data)))
    magic = struct.unpack_from("<I", data)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        end = ">"
    else:
        raise SystemExit("%s: not a pcap file (magic %#x)" % (path, magic))
    rec = struct.Struct(end + "IIII")
    off, frames = 24, []
    while off < len(data):
        if off + rec.size > len(data):
            raise SystemExit("%s: truncated record header at %d" % (path, off))
        _, _, caplen, wirelen = rec.unpack_from(data, off)
        off += rec.size
        if caplen != wirelen:
            raise SystemExit("%s: frame %d captured %d of %d bytes" % (path, len(frames), caplen, wirelen))
        if off + caplen > len(data):
            raise SystemExit("%s: truncated frame at %d" % (path, off))
        frames.append(data[off:off + caplen])
        off += caplen
    return frames


def gen(a):
    sizes = [int(s) for s in a.sizes.split()]
    rng = random.Random(a.seed)
    dst, src = mac(a.dst_mac), mac(a.src_mac)
    fseq = collections.Counter()
    frames = []
    for seq in range(a.frames):
        flow = rng.randrange(a.flows)
        frames.append((flow, frame(dst, src, flow, seq, fseq[flow], rng.choice(sizes))))
        fseq[flow] += 1
    os.makedirs(a.dir, exist_ok=True)
    write_pcap(os.path.join(a.dir, "sent.pcap"), [f for _, f in frames])
    write_pcap(os.path.join(a.dir, "empty.pcap"), [])
    rounds = (a.frames + a.round - 1) // a.round
    for r in range(rounds):
        chunk = frames[r * a.round:(r + 1) * a.round]
        for q in range(a.queues):
            write_pcap(os.path.join(a.dir, "r%d_q%d.pcap" % (r, q)),
                       [f for flow, f in chunk if flow % a.queues == q])
    print(rounds, sum(len(f) for _, f in frames))


def describe(f):
    t = tag(f)
    return "%d B, %s" % (len(f), "flow %d seq %d" % (t[0], t[1]) if t else "not one of ours")


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def compare(a):
    sent = read_pcap(a.sent)
    recv = [read_pcap(p) for p in a.recv]
    errors = []
    by_seq = {}
    for f in sent:
        by_seq[tag(f)[1]] = f
    want = collections.Counter(sent)
    got = collections.Counter(f for q in recv for f in q)
    total = sum(len(q) for q in recv)
    per_q = [len(q) for q in recv]
    print("sent %d frames (%d bytes); received %d (%d bytes) on RX queues %s"
          % (len(sent), sum(map(len, sent)), total, sum(len(f) for q in recv for f in q), per_q))

    missing = want - got
    extra = got - want
    if missing:
        errors.append("%d sent frame(s) did not arrive (byte-identical)" % sum(missing.values()))
    if extra:
        errors.append("%d received frame(s) differ from every sent frame or are duplicates"
                      % sum(extra.values()))
    shown = 0
    for f, n in extra.items():
        if shown >= 5:
            break
        shown += 1
        t = tag(f)
        orig = by_seq.get(t[1]) if t else None
        if orig is not None and orig != f:
            print("  corrupt: received %s; sent frame %d was %d B, first difference at byte %d"
                  % (describe(f), t[1], len(orig), first_diff(orig, f)))
        elif orig is not None:
            print("  duplicate x%d: %s" % (n, describe(f)))
        else:
            print("  unexpected: %s, first bytes %s" % (describe(f), f[:48].hex()))
    for f in list(missing)[:5]:
        print("  missing: %s" % describe(f))

    # Per-flow order and queue affinity: a flow must arrive on one RX queue, in the
    # order it was sent (a switch spreading by flow hash must not reorder a flow).
    flow_queues = collections.defaultdict(set)
    reordered = 0
    for qi, q in enumerate(recv):
        last = {}
        for f in q:
            t = tag(f)
            if t is None:
                continue
            flow, _, fseq = t
            flow_queues[flow].add(qi)
            if flow in last and fseq <= last[flow]:
                reordered += 1
                if reordered <= 5:
                    print("  out of order on RX queue %d: flow %d frame %d after %d" % (qi, flow, fseq, last[flow]))
            last[flow] = fseq
    if reordered:
        errors.append("%d frame(s) out of order within their flow" % reordered)
    split = sorted(f for f, qs in flow_queues.items() if len(qs) > 1)
    if split:
        errors.append("%d flow(s) arrived on more than one RX queue: %s"
                      % (len(split), ", ".join("%d->%s" % (f, sorted(flow_queues[f])) for f in split[:8])))
    used = sum(1 for n in per_q if n)
    if used < a.min_queues:
        errors.append("frames arrived on %d RX queue(s), expected at least %d (queue counts %s)"
                      % (used, a.min_queues, per_q))
    print("%d flows, arriving on %d of %d RX queue(s)" % (len(flow_queues), used, len(recv)))
    for e in errors:
        print("ERROR: " + e)
    if not errors:
        print("ok: every frame arrived once, byte-identical, flows in order")
    return 1 if errors else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--frames", type=int, required=True)
    g.add_argument("--round", type=int, required=True)
    g.add_argument("--queues", type=int, default=1)
    g.add_argument("--flows", type=int, default=16)
    g.add_argument("--sizes", required=True)
    g.add_argument("--src-mac", required=True)
    g.add_argument("--dst-mac", required=True)
    g.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("compare")
    c.add_argument("--sent", required=True)
    c.add_argument("--min-queues", type=int, default=1)
    c.add_argument("recv", nargs="+")
    a = p.parse_args()
    if a.cmd == "gen":
        if a.flows > 65535 or a.flows < 1 or a.queues < 1 or a.round < 1:
            raise SystemExit("bad --flows/--queues/--round")
        gen(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
