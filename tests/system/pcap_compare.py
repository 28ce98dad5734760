#!/usr/bin/env python3
"""Frames for tests/system/virtio_matrix.sh: generate them, and compare what arrived.

  pcap_compare.py gen --dir DIR --frames N --round R --queues Q --flows F
                      --sizes "60 64 1514" --src-mac MAC --dst-mac MAC [--seed S]
                      [--offload none|csum|tso=MSS|tso-pass=MSS] [--max-frame BYTES]
      Writes DIR/sent.pcap (every frame, in sending order), DIR/expected.pcap (what
      the receiver must get, in that order), DIR/empty.pcap (no frame), DIR/rounds.txt
      (per round: frames sent and frames expected so far) and DIR/r<K>_q<Q>.pcap:
      round K's frames for sender queue Q. Prints the number of rounds, the frames and
      bytes sent and the frames and bytes expected. A flow always goes to the same
      sender queue (flow % Q), so the order of a flow's frames is the order the sender
      transmits them in.

  --offload (default none: expected = sent, Ethernet/IPv4/UDP frames as below):
    csum     Ethernet (some flows VLAN-tagged) / IPv4 (some with options) or IPv6 /
             UDP or TCP (TCP with options on some flows), --sizes are L4 payload
             lengths. The L4 checksums in sent.pcap are WRONG (garbage) and IPv4
             header checksums 0; expected.pcap has them right (RFC 768/793/1071, UDP's
             computed 0 sent as 0xffff; some payloads are tuned so that it is). A few
             IPv4/UDP frames carry checksum 0 ("none"), which the sender keeps as it is.
    tso=MSS  the same with TCP only (IPv4 flows with timestamps, IPv6 without
             options), --sizes are TCP payload lengths up to 64 KiB; expected.pcap holds
             each frame cut into MSS-byte segments the way TCP segmentation must:
             IPv4 total length, id + i, header checksum; IPv6 payload length; sequence
             number + i * MSS; CWR only on the first, FIN and PSH only on the last
             segment; a valid TCP checksum. A frame of at most MSS payload bytes stays
             one frame (with its checksums right).
    tso-pass=MSS  the frames of tso=MSS, for a receiver that negotiated GUEST_CSUM and
             GUEST_TSO4/6 but not GUEST_ECN (DPDK's virtio PMD with the tcp_lro and
             checksum RX offloads): each frame reaches it whole, unsegmented, its TCP
             checksum field holding the partial checksum (the pseudo-header sum with
             the L4 length, RFC 1071 folded, not complemented: what NEEDS_CSUM passes
             on and the PMD leaves as it is), except a frame of more than MSS payload
             bytes with CWR set: that one must be segmented as for tso=MSS (CWR on
             the first segment only), each segment with its own partial checksum.
    Each MSS-sized piece of a payload (the whole payload for csum) starts with the tag
    below (flow, expected-frame number, per-flow expected number, expected length).
  --max-frame BYTES (without --offload): frames longer than this are expected to be
    dropped on the way (a receiving port's MTU + 14): not in expected.pcap, not counted
    as expected; the printed sent counts still include them.

  pcap_compare.py compare --sent DIR/sent.pcap [--min-queues K] OUT0.pcap OUT1.pcap ...
      OUTi.pcap holds what the receiver got on its RX queue i. Checks that every
      sent frame arrived exactly once, byte-identical; nothing else arrived; each
      flow arrived on one RX queue, in sending order; at least K RX queues got
      frames. Exit 0 if all holds, 1 otherwise (with what went wrong).

Without --offload, frame i (i = sequence number over the whole run) is Ethernet/IPv4/UDP, its flow
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


def parse(f):
    """Offsets of a frame's headers: dict l3 (IP header), v6, proto, l4 (L4 header),
    payload (L4 payload), or None if it is not Ethernet [VLAN] / IPv4|IPv6 / UDP|TCP."""
    off = 12
    if len(f) < 14:
        return None
    etype = struct.unpack_from("!H", f, off)[0]
    while etype in (0x8100, 0x88A8) and len(f) >= off + 6:
        off += 4
        etype = struct.unpack_from("!H", f, off)[0]
    l3 = off + 2
    if etype == 0x0800 and len(f) >= l3 + 20:
        v6, proto, l4 = False, f[l3 + 9], l3 + (f[l3] & 0xF) * 4
    elif etype == 0x86DD and len(f) >= l3 + 40:
        v6, proto, l4 = True, f[l3 + 6], l3 + 40
    else:
        return None
    if proto == 17 and len(f) >= l4 + 8:
        payload = l4 + 8
    elif proto == 6 and len(f) >= l4 + 20:
        payload = l4 + (f[l4 + 12] >> 4) * 4
    else:
        return None
    return {"l3": l3, "v6": v6, "proto": proto, "l4": l4, "payload": payload}


def tag(f):
    """(flow, seq, fseq) of a frame we generated, or None."""
    h = parse(f)
    off = h["payload"] if h else HDR
    if len(f) < off + TAG.size:
        return None
    m, flow, seq, fseq, length = TAG.unpack_from(f, off)
    return (flow, seq, fseq) if m == MAGIC else None


def field_at(f, off):
    """What byte `off` of frame f is (for reporting a difference)."""
    h = parse(f)
    if h is None:
        return "byte %d" % off
    l3, l4, pl = h["l3"], h["l4"], h["payload"]
    if off < l3:
        return "Ethernet header byte %d" % off
    if off < l4:
        rel = off - l3
        names = ({4: "payload length", 5: "payload length"} if h["v6"] else
                 {2: "total length", 3: "total length", 4: "id", 5: "id", 10: "header checksum",
                  11: "header checksum"})
        return "%s %s (header byte %d)" % ("IPv6" if h["v6"] else "IPv4", names.get(rel, "field"), rel)
    if off < pl:
        rel = off - l4
        if h["proto"] == 17:
            names = {4: "length", 5: "length", 6: "checksum", 7: "checksum"}
        else:
            names = {4: "sequence number", 5: "sequence number", 6: "sequence number", 7: "sequence number",
                     13: "flags", 16: "checksum", 17: "checksum"}
        return "%s %s (header byte %d)" % ("UDP" if h["proto"] == 17 else "TCP", names.get(rel, "field"), rel)
    return "payload byte %d" % (off - pl)


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


# ---------------------------------------------------------------- offload traffic

def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ones_sum(data):
    """RFC 1071 one's complement sum of data (odd length padded with a zero byte), folded."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    return fold(sum(struct.unpack("!%dH" % (len(data) // 2), data)))


def l4_sum(f):
    """The folded one's complement sum of frame f's TCP/UDP pseudo-header (addresses,
    protocol, L4 length from the IP header) and L4 bytes, the checksum field taken as 0."""
    h = parse(f)
    l3, l4, proto = h["l3"], h["l4"], h["proto"]
    if h["v6"]:
        l4len = struct.unpack_from("!H", f, l3 + 4)[0] + 40 - (l4 - l3)
        pseudo = bytes(f[l3 + 8:l3 + 40]) + struct.pack("!I3xB", l4len, proto)
    else:
        l4len = struct.unpack_from("!H", f, l3 + 2)[0] - (l4 - l3)
        pseudo = bytes(f[l3 + 12:l3 + 20]) + struct.pack("!xBH", proto, l4len)
    seg = bytearray(f[l4:l4 + l4len])
    at = 6 if proto == 17 else 16
    seg[at:at + 2] = b"\0\0"
    return ones_sum(pseudo + bytes(seg))


def l4_checksum(f):
    """The correct TCP/UDP checksum of frame f (RFC 1071); a UDP result of 0 is sent
    as 0xffff (RFC 768)."""
    c = ~l4_sum(f) & 0xFFFF
    return 0xFFFF if (c == 0 and parse(f)["proto"] == 17) else c


def l4_partial(f):
    """The partial TCP/UDP checksum of frame f: its pseudo-header sum alone (addresses,
    protocol, L4 length from the IP header), folded, not complemented."""
    h = parse(f)
    l3, l4, proto = h["l3"], h["l4"], h["proto"]
    if h["v6"]:
        l4len = struct.unpack_from("!H", f, l3 + 4)[0] + 40 - (l4 - l3)
        return ones_sum(bytes(f[l3 + 8:l3 + 40]) + struct.pack("!I3xB", l4len, proto))
    l4len = struct.unpack_from("!H", f, l3 + 2)[0] - (l4 - l3)
    return ones_sum(bytes(f[l3 + 12:l3 + 20]) + struct.pack("!xBH", proto, l4len))


def set_l4_checksum(f, value):
    h = parse(f)
    struct.pack_into("!H", f, h["l4"] + (6 if h["proto"] == 17 else 16), value)


def set_ip_lengths(f, h, l4len):
    """IP length fields for an L4 segment of l4len bytes; IPv4 header checksum."""
    l3 = h["l3"]
    if h["v6"]:
        struct.pack_into("!H", f, l3 + 4, (h["l4"] - l3 - 40) + l4len)
    else:
        struct.pack_into("!H", f, l3 + 2, (h["l4"] - l3) + l4len)
        struct.pack_into("!H", f, l3 + 10, 0)
        struct.pack_into("!H", f, l3 + 10, ~ones_sum(bytes(f[l3:h["l4"]])) & 0xFFFF)
    if h["proto"] == 17:
        struct.pack_into("!H", f, h["l4"] + 4, l4len)


class FlowShape:
    """The fixed headers of one flow of offload traffic."""

    def __init__(self, flow, kind):
        self.flow = flow
        self.v6 = flow % 4 >= 2
        self.vlan = 100 + flow if flow % 8 in (5, 6) else None
        self.ip_opts = b"\x01\x01\x01\x00" if (not self.v6 and flow % 8 == 1) else b""
        self.tcp = kind == "tso" or flow % 2 == 1
        if kind == "tso":
            self.tcp_opts = b"" if self.v6 else None  # None: timestamps
        else:
            self.tcp_opts = None if flow % 8 in (1, 3) else b""
        self.sport, self.dport = 1024 + flow, 2048 + (flow * 7) % 101
        # per-flow state: IPv4 id and TCP sequence number; flows 1 and 3 wrap soon
        self.ip_id = 0xFFFD if flow == 1 else (flow * 1000) & 0xFFFF
        self.seq = 0xFFFFFFFF - 5000 if flow == 3 else (flow * 0x1234567 * 16) & 0xFFFFFFFF

    def headers(self, dst, src, seq, flags, payload_len):
        """Ethernet..L4 header bytes for a frame of payload_len L4 payload bytes, with
        correct IP lengths and IPv4 header checksum and a garbage L4 checksum."""
        eth = dst + src
        if self.vlan is not None:
            eth += struct.pack("!HH", 0x8100, self.vlan)
        eth += b"\x86\xdd" if self.v6 else b"\x08\x00"
        if self.tcp:
            opts = self.tcp_opts
            if opts is None:  # NOP NOP timestamps
                opts = struct.pack("!BBBBII", 1, 1, 8, 10, 0x01000000 + seq, 0x02000000 + self.flow)
            l4 = struct.pack("!HHIIBBHHH", self.sport, self.dport, self.seq, 0x10203040,
                             (20 + len(opts)) // 4 << 4, flags, 512, 0xBAD0 ^ (seq & 0xFF), 0) + opts
            proto = 6
        else:
            # garbage, never 0 (testpmd's csum engine leaves a UDP checksum of 0 alone:
            # "no checksum"), except on some IPv4 frames where 0 is what we mean
            cs = 0 if (not self.v6 and seq % 16 == 0) else 0xBAD0 ^ (seq & 0xFF)
            l4 = struct.pack("!HHHH", self.sport, self.dport, 8 + payload_len, cs)
            proto = 17
        if self.v6:
            ip = struct.pack("!IHBB16s16s", 0x60000000 | self.flow, len(l4) + payload_len, proto, 64,
                             bytes.fromhex("fd000001000000000000000000000000")[:14] + struct.pack("!H", self.flow),
                             bytes.fromhex("fd000002000000000000000000000001"))
        else:
            ihl = (20 + len(self.ip_opts)) // 4
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4) + payload_len,
                                       self.ip_id, 0x4000 if self.tcp else 0, 64, proto, 0,
                                       bytes((10, 1, self.flow >> 8, self.flow & 0xFF)), bytes((10, 2, 0, 1))))
            ip += self.ip_opts
            struct.pack_into("!H", ip, 10, ~ones_sum(bytes(ip)) & 0xFFFF)
            ip = bytes(ip)
        return bytearray(eth + ip + l4)


def tune_to_zero(f):
    """Sets the payload word after the tag so that the L4 sum is all ones, i.e. the
    checksum computes to 0: UDP must then carry 0xffff, TCP 0."""
    h = parse(f)
    at = h["payload"] + TAG.size  # an even offset from the L4 header, as the sum needs
    if at + 2 > len(f):
        return
    struct.pack_into("!H", f, at, 0)
    struct.pack_into("!H", f, at, ~l4_sum(f) & 0xFFFF)
    assert l4_sum(f) == 0xFFFF


def gen_offload(a, kind, mss, passthrough=False):
    """Offload traffic: (flow, sent frame, [expected frames]) in sending order.
    passthrough: the receiver takes TSO and partial checksums but not ECN."""
    sizes = [int(s) for s in a.sizes.split()]
    rng = random.Random(a.seed)
    dst, src = mac(a.dst_mac), mac(a.src_mac)
    shapes = [FlowShape(f, kind) for f in range(a.flows)]
    out = []
    eseq, efseq = 0, collections.Counter()
    for seq in range(a.frames):
        flow = rng.randrange(a.flows)
        sh = shapes[flow]
        plen = rng.choice(sizes)
        flags = 0x10
        if sh.tcp:
            flags |= (0x08 if seq % 3 else 0) | (0x01 if seq % 5 == 4 else 0) | (0x80 if seq % 4 == 1 else 0) \
                | (0x40 if seq % 6 == 2 else 0)
        hdr = sh.headers(dst, src, seq, flags, plen)
        hl = len(hdr)
        piece = mss if (kind == "tso" and plen > mss) else plen
        count = (plen + piece - 1) // piece
        payload = bytearray(((seq * 31 + j * 7) & 0xFF) for j in range(plen))
        for i in range(count):
            n = min(piece, plen - i * piece)
            if n >= TAG.size:
                TAG.pack_into(payload, i * piece, MAGIC, flow, eseq + i, efseq[flow] + i, hl + n)
        sent = hdr + payload
        if not sh.tcp and not sh.v6 and seq % 16 == 0:
            pass  # UDP checksum 0: no checksum, left alone by everyone
        elif seq % 7 == 3 and count == 1:
            tune_to_zero(sent)
        h = parse(sent)
        exp = []
        if passthrough and not (count > 1 and flags & 0x80):
            e = bytearray(sent)
            set_ip_lengths(e, h, len(sent) - h["l4"])
            set_l4_checksum(e, l4_partial(e))
            exp.append(bytes(e))
            count = 0  # the whole frame, no segments
        for i in range(count):
            n = min(piece, plen - i * piece)
            e = bytearray(sent[:hl]) + sent[hl + i * piece:hl + i * piece + n]
            l4len = hl - h["l4"] + n
            set_ip_lengths(e, h, l4len)
            if not h["v6"] and count > 1:
                struct.pack_into("!H", e, h["l3"] + 4, (sh.ip_id + i) & 0xFFFF)
                set_ip_lengths(e, h, l4len)  # header checksum again, with the id
            if sh.tcp:
                struct.pack_into("!I", e, h["l4"] + 4, (sh.seq + i * piece) & 0xFFFFFFFF)
                fl = flags
                if count > 1 and i < count - 1:
                    fl &= ~(0x01 | 0x08)
                if i > 0:
                    fl &= ~0x80
                e[h["l4"] + 13] = fl
            if passthrough:
                set_l4_checksum(e, l4_partial(e))
            elif sh.tcp or struct.unpack_from("!H", sent, h["l4"] + 6)[0] != 0:
                set_l4_checksum(e, l4_checksum(e))
            exp.append(bytes(e))
        out.append((flow, bytes(sent), exp))
        eseq += len(exp)
        efseq[flow] += len(exp)
        sh.ip_id = (sh.ip_id + (plen + piece - 1) // piece) & 0xFFFF
        sh.seq = (sh.seq + plen) & 0xFFFFFFFF
    return out


def gen(a):
    sizes = [int(s) for s in a.sizes.split()]
    rng = random.Random(a.seed)
    dst, src = mac(a.dst_mac), mac(a.src_mac)
    fseq = collections.Counter()
    frames = []  # (flow, sent frame, [expected frames])
    if a.offload == "none":
        for seq in range(a.frames):
            flow = rng.randrange(a.flows)
            f = frame(dst, src, flow, seq, fseq[flow], rng.choice(sizes))
            frames.append((flow, f, [f] if a.max_frame is None or len(f) <= a.max_frame else []))
            fseq[flow] += 1
    elif a.offload == "csum":
        frames = gen_offload(a, "csum", 0)
    elif a.offload.startswith("tso="):
        frames = gen_offload(a, "tso", int(a.offload[4:]))
    elif a.offload.startswith("tso-pass="):
        frames = gen_offload(a, "tso", int(a.offload[9:]), passthrough=True)
    else:
        raise SystemExit("bad --offload %r" % a.offload)
    os.makedirs(a.dir, exist_ok=True)
    write_pcap(os.path.join(a.dir, "sent.pcap"), [f for _, f, _ in frames])
    write_pcap(os.path.join(a.dir, "expected.pcap"), [e for _, _, exp in frames for e in exp])
    write_pcap(os.path.join(a.dir, "empty.pcap"), [])
    rounds = (a.frames + a.round - 1) // a.round
    with open(os.path.join(a.dir, "rounds.txt"), "w") as rf:
        for r in range(rounds):
            chunk = frames[r * a.round:(r + 1) * a.round]
            for q in range(a.queues):
                write_pcap(os.path.join(a.dir, "r%d_q%d.pcap" % (r, q)),
                           [f for flow, f, _ in chunk if flow % a.queues == q])
            upto = frames[:(r + 1) * a.round]
            rf.write("%d %d\n" % (len(upto), sum(len(exp) for _, _, exp in upto)))
    print(rounds, len(frames), sum(len(f) for _, f, _ in frames),
          sum(len(exp) for _, _, exp in frames), sum(len(e) for _, _, exp in frames for e in exp))


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
        t = tag(f)
        if t is not None:
            by_seq[t[1]] = f
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
            at = first_diff(orig, f)
            diffs = sorted({field_at(orig, i) for i in range(min(len(orig), len(f))) if orig[i] != f[i]})
            print("  corrupt: received %s; expected frame %d was %d B, first difference at byte %d (%s)%s"
                  % (describe(f), t[1], len(orig), at, field_at(orig, at),
                     "; differing: " + ", ".join(diffs[:6]) if len(diffs) > 1 else ""))
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
    print("largest frame received: %d B (largest sent: %d B)"
          % (max((len(f) for q in recv for f in q), default=0), max(map(len, sent), default=0)))
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
    g.add_argument("--offload", default="none")
    g.add_argument("--max-frame", type=int, default=None)
    c = sub.add_parser("compare")
    c.add_argument("--sent", required=True)
    c.add_argument("--min-queues", type=int, default=1)
    c.add_argument("recv", nargs="+")
    a = p.parse_args()
    if a.cmd == "gen":
        if a.flows > 65535 or a.flows < 1 or a.queues < 1 or a.round < 1:
            raise SystemExit("bad --flows/--queues/--round")
        if a.max_frame is not None and a.offload != "none":
            raise SystemExit("--max-frame is for --offload none only")
        gen(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
