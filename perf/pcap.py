#!/usr/bin/env python3
"""Write pcap files of test frames for net_pcap's rx_pcap (the benchmarks' NIC traffic source).

  pcap.py udp FILE SIZE DST_MAC SRC_MAC [--flows N]
      IPv4/UDP frames of SIZE bytes (without FCS), the shape testpmd's txonly engine sends
      (198.18.0.1 -> 198.18.0.2, UDP 9 -> 9, zero payload). --flows N > 1: N frames, the
      i-th from 198.18.0.(1+i), as testpmd's --txonly-multi-flow varies the source address.
  pcap.py vxlan FILE SIZE DST_MAC SRC_MAC --outer OUTER_DST_MAC,OUTER_SRC_MAC,SRC_IP,DST_IP,VNI [--flows N]
      the same inner frames, each in VXLAN (RFC 7348): outer IPv4/UDP to port 4789, UDP
      checksum 0, source port from the flow (as a VTEP's ECMP hash would vary it).
  pcap.py arp FILE DST_MAC SRC_MAC SENDER_IP TARGET_IP
      one ARP reply: SENDER_IP is at SRC_MAC (teaches a VTEP its remote's MAC).
"""
import argparse
import ipaddress
import struct
import sys


def mac(s):
    b = bytes(int(x, 16) for x in s.split(":"))
    if len(b) != 6:
        raise argparse.ArgumentTypeError(f"{s}: not a MAC address")
    return b


def ip4(s):
    return ipaddress.IPv4Address(s).packed


def ipv4_header(total_len, proto, src, dst):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total_len, 0, 0,
                    64, proto, 0, src, dst)
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return h[:10] + struct.pack("!H", ~s & 0xffff) + h[12:]


def udp_frame(size, dst, src, flow):
    if size < 42:
        sys.exit(f"frame too small for IPv4/UDP: {size}")
    ip_len = size - 14
    ip = ipv4_header(ip_len, 17, bytes([198, 18, (1 + flow) >> 8, (1 + flow) & 0xff]), bytes([198, 18, 0, 2]))
    f = dst + src + b"\x08\x00" + ip + struct.pack("!HHHH", 9, 9, ip_len - 20, 0)
    return f + bytes(size - len(f))


def vxlan_frame(inner, outer_dst, outer_src, src_ip, dst_ip, vni, flow):
    udp_len = 8 + 8 + len(inner)
    ip = ipv4_header(20 + udp_len, 17, src_ip, dst_ip)
    udp = struct.pack("!HHHH", 49152 + (flow * 2654435761 >> 7) % 16384, 4789, udp_len, 0)
    vx = struct.pack("!II", 0x08000000, vni << 8)
    return outer_dst + outer_src + b"\x08\x00" + ip + udp + vx + inner


def arp_reply(dst, src, sender_ip, target_ip):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, src, sender_ip, dst, target_ip)
    f = dst + src + b"\x08\x06" + arp
    return f + bytes(60 - len(f))


def write(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for fr in frames:
            f.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)) + fr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("udp", "vxlan"):
        s = sub.add_parser(kind)
        s.add_argument("file")
        s.add_argument("size", type=int)
        s.add_argument("dst", type=mac)
        s.add_argument("src", type=mac)
        s.add_argument("--flows", type=int, default=1)
        if kind == "vxlan":
            s.add_argument("--outer", required=True, help="OUTER_DST_MAC,OUTER_SRC_MAC,SRC_IP,DST_IP,VNI")
    a = sub.add_parser("arp")
    a.add_argument("file")
    a.add_argument("dst", type=mac)
    a.add_argument("src", type=mac)
    a.add_argument("sender_ip", type=ip4)
    a.add_argument("target_ip", type=ip4)
    args = p.parse_args()
    if args.kind == "arp":
        write(args.file, [arp_reply(args.dst, args.src, args.sender_ip, args.target_ip)])
        return
    frames = [udp_frame(args.size, args.dst, args.src, i) for i in range(args.flows)]
    if args.kind == "vxlan":
        o_dst, o_src, s_ip, d_ip, vni = args.outer.split(",")
        frames = [vxlan_frame(fr, mac(o_dst), mac(o_src), ip4(s_ip), ip4(d_ip), int(vni), i)
                  for i, fr in enumerate(frames)]
    write(args.file, frames)


if __name__ == "__main__":
    main()
