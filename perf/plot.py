#!/usr/bin/python3
"""Report for perf/run.sh: reads its per-trial CSV, prints the markdown tables (median and
min-max over the trials per topology, frame size and switch) and draws Mpps vs frame size,
one panel per topology, one line per switch, min-max as error bars. Runs with Debian's
/usr/bin/python3, where python3-matplotlib is installed.

    perf/plot.py --csv perf/results/latest.csv --tables              # markdown to stdout
    perf/plot.py --csv perf/results/latest.csv --plot out.png         # PNG (python3-matplotlib)

CSV columns: topology,target,size,trial,mpps,crosscheck_mpps,foreign_pct,pmd_busy_pct,
cycles_per_packet,status (status: ok, disturbed = other processes used > 10 % of a core
during the window, failed, skipped).
"""
import argparse
import csv
import statistics
import sys

TOPOLOGIES = {
    "loopback": ("VM-to-VM loopback",
                 "two vhost-user ports; Mpps = frames the generator received, both directions summed"),
    "guest-nic": ("guest -> NIC",
                  "vhost-user -> net_null (sink); Mpps = frames the generator's TX put on the virtqueue, "
                  "i.e. what the switch drained (the ring is bounded, so in steady state TX = drained)"),
    "nic-guest": ("NIC -> guest",
                  "net_pcap infinite_rx (one IPv4/UDP frame to the guest's MAC, replayed) -> vhost-user; "
                  "Mpps = frames the generator received"),
    "guest-vxlan": ("guest -> VXLAN tunnel (encapsulation)",
                    "vhost-user -> VXLAN port (VNI 42, one remote VTEP) over net_pcap (TX a sink); "
                    "size = the inner frame, the underlay carries 50 bytes more; "
                    "Mpps = frames the generator's TX put on the virtqueue"),
    "vxlan-guest": ("VXLAN tunnel -> guest (decapsulation)",
                    "net_pcap infinite_rx (VXLAN packets from the remote VTEP, VNI 42, holding a frame to the "
                    "guest's MAC) -> VXLAN port -> vhost-user; size = the inner frame; "
                    "Mpps = frames the generator received"),
}
TARGETS = {"vuswitch": "vuswitch", "testpmd": "testpmd net_vhost (io)", "ovs": "OVS-DPDK (NORMAL)"}
ORDER = ["vuswitch", "testpmd", "ovs"]


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(s):
    return float(s) if s not in ("", "-", None) else None


def summarise(rows):
    """{(topology, target, size): dict(median, lo, hi, cycles, busy, n_ok, n_dist, n_fail)}"""
    cells = {}
    for r in rows:
        key = (r["topology"], r["target"], int(r["size"]))
        cells.setdefault(key, []).append(r)
    out = {}
    for key, rs in cells.items():
        good = [r for r in rs if r["status"] in ("ok", "disturbed")]
        mpps = [float(r["mpps"]) for r in good]
        cyc = [num(r["cycles_per_packet"]) for r in good if num(r["cycles_per_packet"]) is not None]
        busy = [num(r["pmd_busy_pct"]) for r in good if num(r["pmd_busy_pct"]) is not None]
        out[key] = {
            "median": statistics.median(mpps) if mpps else None,
            "lo": min(mpps) if mpps else None,
            "hi": max(mpps) if mpps else None,
            "cycles": statistics.median(cyc) if cyc else None,
            "busy": statistics.median(busy) if busy else None,
            "n_ok": sum(r["status"] == "ok" for r in rs),
            "n_dist": sum(r["status"] == "disturbed" for r in rs),
            "n_fail": sum(r["status"] in ("failed", "skipped") for r in rs),
            "foreign": [r["foreign_pct"] for r in rs if r["status"] == "disturbed"],
        }
    return out


def present(rows, field):
    seen = []
    for r in rows:
        if r[field] not in seen:
            seen.append(r[field])
    return seen


def tables(rows, out):
    s = summarise(rows)
    topos = [t for t in TOPOLOGIES if t in present(rows, "topology")]
    targets = [t for t in ORDER if t in present(rows, "target")]
    sizes = sorted({int(r["size"]) for r in rows})
    for topo in topos:
        title, what = TOPOLOGIES[topo]
        out.write(f"\n### {title} ({topo})\n\n{what}.\n\n")
        out.write("| frame | switch | Mpps median | min-max | Gbps | cycles/packet | PMD busy | vuswitch / this | windows |\n")
        out.write("|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
        for size in sizes:
            vus = s.get((topo, "vuswitch", size), {}).get("median")
            for target in targets:
                c = s.get((topo, target, size))
                if c is None:
                    continue
                if c["median"] is None:
                    out.write(f"| {size} B | {TARGETS[target]} | failed | | | | | | {c['n_fail']} failed |\n")
                    continue
                gbps = c["median"] * (size + 20) * 8 / 1000
                cyc = f"{c['cycles']:.0f}" if c["cycles"] is not None else "-"
                busy = f"{c['busy']:.0f} %" if c["busy"] is not None else "-"
                if target == "vuswitch" or vus is None or not c["median"]:
                    ratio = "-"
                else:
                    ratio = f"{vus / c['median']:.2f}"
                win = [f"{c['n_ok']} ok"]
                if c["n_dist"]:
                    win.append(f"{c['n_dist']} disturbed ({', '.join(x + ' %' for x in c['foreign'])} foreign CPU)")
                if c["n_fail"]:
                    win.append(f"{c['n_fail']} failed")
                out.write(f"| {size} B | {TARGETS[target]} | {c['median']:.3f} | {c['lo']:.3f}-{c['hi']:.3f} | "
                          f"{gbps:.2f} | {cyc} | {busy} | {ratio} | {', '.join(win)} |\n")
    out.write("\nGbps = Mpps x (frame + 20 B preamble and inter-frame gap) x 8, frame including the 4-byte FCS. "
              "cycles/packet = PMD cycles (busy + idle) over the window / frames the PMD received "
              "(vuswitchctl show pmd; OVS: dpif-netdev/pmd-stats-show); PMD busy = share of those cycles spent "
              "on polls that moved frames. vuswitch / this = ratio of the medians. A window is disturbed when "
              "other processes used more than 10 % of a core during it; its number is kept but flagged.\n")


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarise(rows)
    topos = [t for t in TOPOLOGIES if t in present(rows, "topology")]
    targets = [t for t in ORDER if t in present(rows, "target")]
    sizes = sorted({int(r["size"]) for r in rows})
    fig, axes = plt.subplots(1, len(topos), figsize=(5 * len(topos), 4.2), squeeze=False)
    markers = {"vuswitch": "o", "testpmd": "s", "ovs": "^"}
    for ax, topo in zip(axes[0], topos):
        for target in targets:
            xs, ys, lo, hi = [], [], [], []
            for i, size in enumerate(sizes):
                c = s.get((topo, target, size))
                if c is None or c["median"] is None:
                    continue
                xs.append(i)
                ys.append(c["median"])
                lo.append(c["median"] - c["lo"])
                hi.append(c["hi"] - c["median"])
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], marker=markers[target], capsize=4, label=TARGETS[target])
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([f"{x} B" for x in sizes])
        ax.set_xlabel("frame size (incl. FCS)")
        ax.set_ylabel("Mpps (median, min-max bars)")
        ax.set_title(f"{TOPOLOGIES[topo][0]} ({topo})")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
    fig.suptitle("Switch under test on 1 core, testpmd virtio-user generator on the other")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", required=True, help="per-trial CSV written by perf/run.sh")
    ap.add_argument("--tables", action="store_true", help="print the markdown tables")
    ap.add_argument("--plot", metavar="FILE.png", help="write the Mpps vs frame size plot")
    a = ap.parse_args()
    rows = load(a.csv)
    if not rows:
        sys.exit(f"{a.csv}: no trials")
    if a.tables:
        tables(rows, sys.stdout)
    if a.plot:
        try:
            plot(rows, a.plot)
        except ImportError:
            sys.exit("matplotlib missing: apt-get install python3-matplotlib (deploy/setup.sh installs it)")


if __name__ == "__main__":
    main()
