#!/usr/bin/env python3
"""Small host-side helper for the VM tests: QMP and the guest command agent.

  vmctl.py qmp SOCK COMMAND [ARGS-JSON]      run one QMP command, print its "return" as JSON
  vmctl.py dimm-add SOCK ID SIZE             object-add memory-backend-memfd (share=on) mem-ID
                                             + device_add pc-dimm ID
  vmctl.py dimm-del SOCK ID TIMEOUT          device_del ID, wait for DEVICE_DELETED, object-del mem-ID;
                                             exit 2 if the guest did not release it in time
  vmctl.py migrate SRC DST URI [--postcopy] [--paused] [--timeout SECS]
                                             migrate the guest of QMP socket SRC to the QEMU of QMP
                                             socket DST (started with -incoming defer) over URI
                                             (unix:PATH); prints one JSON line (see cmd_migrate);
                                             exit 0 completed and running on DST (--paused: DST has
                                             -S and stays paused), 1 failed or timed
                                             out, 2 QEMU refused to migrate, 3 refused postcopy-ram
  vmctl.py guest SOCK [-t SECS] -- COMMAND   run COMMAND in the guest (agent on ttyS1), print its
                                             output, exit with its status (124 on timeout)
  vmctl.py ports-get JSON PORT.FIELD[.KEY]   print one value of a saved `vuswitchctl --json show ports`
  vmctl.py ports-check JSON [--since BASE] EXPR...
                                             check expressions like vm1.rx_packets>=20, vm1.drops==0,
                                             vm1.messages.SET_MEM_TABLE==0, vm1.state=connected|ready;
                                             print each failed one, exit 1 if any failed; with
                                             --since, numbers are growth since the BASE snapshot
  (a dict field without .KEY is summed: drops, protocol_errors; a missing key reads 0)
  vmctl.py mem-compare FILE FILE             4 KiB pages that differ between two memory dumps
                                             (pmemsave): "differ=N pages=N first=GPA,.."
  vmctl.py fdb-port JSON MAC                 the port(s) a saved `vuswitchctl --json show fdb` has
                                             learned MAC (aa:bb:.. or aabb..) on, one per line
  vmctl.py ports-vhost JSON PORT             one line about a vhost-user port's negotiation:
                                             "ring_type=packed mtu=9000 port_mtu=9000/front-end
                                             features=A,B,.. pairs=N running=N enabled_rx=N
                                             queues=0:256/256,1:256*/256*" (mtu: the front-end's
                                             NET_SET_MTU; port_mtu: the MTU the switch enforces
                                             and its source; running: RX and TX ring started and
                                             enabled; * = not enabled, ! = not started)

Only the standard library: python3 is all the test needs on the host.
QMP events that arrive while waiting for a reply are skipped, except the one waited for.
"""
import json
import os
import socket
import sys
import time


def die(msg, code=1):
    print(f"vmctl: {msg}", file=sys.stderr)
    sys.exit(code)


class Qmp:
    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            die(f"no QMP greeting from {path}: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self, deadline=None):
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")  # QEMU exited
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        req = {"execute": cmd}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{cmd}: {msg['error'].get('desc', msg['error'])}")
            self.events.append(msg)  # an event that arrived before the reply

    def wait_event(self, name, match, timeout):
        def wanted(msg):
            return msg.get("event") == name and all(msg.get("data", {}).get(k) == v for k, v in match.items())
        for msg in self.events:
            if wanted(msg):
                return msg
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if wanted(msg):
                return msg


def cmd_qmp(path, cmd, args=None):
    q = Qmp(path)
    try:
        print(json.dumps(q.execute(cmd, json.loads(args) if args else None)))
    except RuntimeError as e:
        die(str(e))


def cmd_dimm_add(path, dev_id, size):
    q = Qmp(path)
    try:
        t0 = time.monotonic()
        q.execute("object-add", {"qom-type": "memory-backend-memfd", "id": f"mem-{dev_id}",
                                 "size": int(size), "share": True})
        t1 = time.monotonic()
        # device_add returns after QEMU told every vhost-user back-end (ADD_MEM_REG, and
        # with REPLY_ACK it waits for the ack): its duration includes the switch's reply.
        q.execute("device_add", {"driver": "pc-dimm", "id": dev_id, "memdev": f"mem-{dev_id}"})
        t2 = time.monotonic()
    except RuntimeError as e:
        die(str(e))
    print(f"dimm {dev_id} added ({int(size) >> 20} MiB): object-add {t1 - t0:.2f}s, device_add {t2 - t1:.2f}s")


def cmd_dimm_del(path, dev_id, timeout):
    q = Qmp(path)
    try:
        t0 = time.monotonic()
        q.execute("device_del", {"id": dev_id})
        t1 = time.monotonic()
        try:
            q.wait_event("DEVICE_DELETED", {"device": dev_id}, float(timeout))
        except TimeoutError:
            die(f"no DEVICE_DELETED for {dev_id} within {timeout}s (guest did not release the memory)", 2)
        t2 = time.monotonic()
        q.execute("object-del", {"id": f"mem-{dev_id}"})
        t3 = time.monotonic()
    except RuntimeError as e:
        die(str(e))
    print(f"dimm {dev_id} removed: device_del {t1 - t0:.2f}s, DEVICE_DELETED after {t2 - t0:.2f}s, "
          f"object-del {t3 - t2:.2f}s")


def cmd_guest(path, timeout, command):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    tag = f"{os.getpid()}x{time.monotonic_ns() % 1000000}"
    # The agent reads whole lines from a raw tty; a newline inside the command would end it.
    sock.sendall(f"{tag} {command.replace(chr(10), '; ')}\n".encode())
    deadline = time.monotonic() + timeout
    buf = b""
    end = f"@@END {tag} ".encode()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stdout.write(buf.decode(errors="replace"))
            die(f"guest command timed out after {timeout}s: {command}", 124)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            die("agent connection closed")
        buf += chunk
        pos = buf.find(end)
        if pos >= 0 and b"\n" in buf[pos:]:
            rest = buf[pos + len(end):].split(b"\n", 1)[0]
            out = buf[:pos]
            # Drop anything printed for earlier (timed-out) commands.
            prev = out.rfind(b"@@END ")
            if prev >= 0:
                out = out[out.find(b"\n", prev) + 1:]
            sys.stdout.write(out.decode(errors="replace"))
            sys.exit(int(rest.strip() or b"1"))


# Migration: a unix socket between two QEMUs on one host is not the bottleneck; QEMU 7.2's
# default cap (128 MiB/s) would only make the switch-over wait.
MIGRATE_MAX_BANDWIDTH = 1 << 30


def cmd_migrate(src_path, dst_path, uri, postcopy, timeout, paused=False):
    """Precopy (or postcopy) migration of SRC's guest to DST, driven over both QMP sockets.

    DST must run with `-incoming defer`: capabilities are set on both sides first (QEMU
    checks postcopy-ram on the destination against the vhost-user back-end: it needs the
    PAGEFAULT protocol feature), then DST listens on URI and SRC migrates. With postcopy,
    migrate-start-postcopy follows as soon as the migration is active, so most of the RAM
    moves after the guest already runs on DST. Prints one JSON line: status (completed,
    failed, timeout, refused), error, downtime_ms / total_ms / setup_ms (QEMU's own
    figures), postcopy_ms (when postcopy was started), ram (transferred, duplicate and
    normal pages, dirty-sync-count, postcopy-requests), statuses (SRC's, in the order
    seen: postcopy-active proves the switch to postcopy happened), dst_status and
    run_after_ms (how long after SRC reported completion DST was running)."""
    dst, src = Qmp(dst_path), Qmp(src_path)
    out = {"uri": uri, "postcopy": postcopy}

    def finish(code, **fields):
        out.update(fields)
        print(json.dumps(out))
        sys.exit(code)

    # Set either way: a QEMU keeps its capabilities, and one that was the destination of
    # a postcopy migration would otherwise advise postcopy to a destination without it
    # ("RAM postcopy is disabled but have 16 byte advise": the load fails).
    caps = {"capabilities": [{"capability": "postcopy-ram", "state": postcopy}]}
    for side, q in (("destination", dst), ("source", src)):
        try:
            q.execute("migrate-set-capabilities", caps)
        except RuntimeError as e:
            finish(3 if postcopy else 2, status="refused", error=f"{side}: {e}")
    try:
        dst.execute("migrate-incoming", {"uri": uri})
        src.execute("migrate-set-parameters", {"max-bandwidth": MIGRATE_MAX_BANDWIDTH})
        t0 = time.monotonic()
        src.execute("migrate", {"uri": uri})
    except RuntimeError as e:
        finish(2, status="refused", error=str(e))
    seen = []
    while True:
        info = src.execute("query-migrate")
        status = info.get("status")
        if status not in seen:
            seen.append(status)
        if status in ("completed", "failed", "cancelled"):
            break
        if postcopy and "postcopy_ms" not in out and status == "active":
            src.execute("migrate-start-postcopy")
            out["postcopy_ms"] = round((time.monotonic() - t0) * 1000)
        if time.monotonic() - t0 > timeout:
            src.execute("migrate_cancel")
            finish(1, status="timeout", error=f"not completed after {timeout}s (last status {status})", last=info)
        time.sleep(0.02)
    t_done = time.monotonic()
    # DST refuses a guest whose state does not add up (e.g. "VQ 0 size 0x100 <
    # last_avail_idx 0x.. - used_idx 0x..": a used ring the back-end wrote without
    # logging it arrives stale) and exits; SRC has reported "completed" all the same.
    ram = info.get("ram", {})
    out.update(status=status, statuses=seen, error=info.get("error-desc"), downtime_ms=info.get("downtime"),
               total_ms=info.get("total-time"), setup_ms=info.get("setup-time"),
               ram={k: ram.get(k) for k in ("transferred", "duplicate", "normal", "dirty-sync-count",
                                            "postcopy-requests")})
    if status != "completed":
        finish(1)
    while True:
        try:
            st = dst.execute("query-status")
        except EOFError:
            finish(1, dst_status="exited", error="the destination QEMU exited after the migration")
        if st.get("running") or (paused and st.get("status") != "inmigrate"):
            finish(0, dst_status=st.get("status"), run_after_ms=round((time.monotonic() - t_done) * 1000))
        if time.monotonic() - t_done > 30:
            finish(1, dst_status=st.get("status"), error="destination not running 30 s after completion")
        time.sleep(0.02)


def cmd_mem_compare(a, b, page=4096):
    differ, pages, first = 0, 0, []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(page), fb.read(page)
            if not x and not y:
                break
            if x != y:
                differ += 1
                if len(first) < 8:
                    first.append(hex(pages * page))
            pages += 1
    print(f"differ={differ} pages={pages} first={','.join(first) or '-'}")


def cmd_fdb_port(path, mac):
    want = mac.replace(":", "").lower()
    with open(path) as f:
        for e in json.load(f)["fdb"]:
            if e["mac"] == want:
                print(e["port"])


def port_value(ports, ref):
    parts = ref.split(".")
    if len(parts) < 2:
        die(f"bad reference {ref!r}: want PORT.FIELD[.KEY]")
    port = next((p for p in ports if p["name"] == parts[0]), None)
    if port is None:
        die(f"no port {parts[0]!r} in vuswitchctl output")
    v = port.get(parts[1], 0)
    if isinstance(v, dict):
        v = v.get(parts[2], 0) if len(parts) > 2 else sum(v.values())
    return v


def load_ports(path):
    with open(path) as f:
        return json.load(f)["ports"]


def cmd_ports_check(path, exprs):
    import re
    ports = load_ports(path)
    base = None
    if exprs[:1] == ["--since"]:
        base = load_ports(exprs[1])
        exprs = exprs[2:]
    failed = 0
    for e in exprs:
        m = re.fullmatch(r"([\w.]+?)\s*(>=|<=|==|!=|>|<|=)\s*(.+)", e)
        if not m:
            die(f"bad expression {e!r}")
        ref, op, want = m.groups()
        v = port_value(ports, ref)
        if base is not None and isinstance(v, (int, float)):
            v -= port_value(base, ref)
        if op == "=":
            ok = str(v) in want.split("|")
        else:
            ok = eval(f"{int(v)} {op} {int(want)}")
        if not ok:
            print(f"{e} (is {v})")
            failed += 1
    sys.exit(1 if failed else 0)


def cmd_ports_vhost(path, name):
    port = next((p for p in load_ports(path) if p["name"] == name), None)
    if port is None:
        die(f"no port {name!r} in vuswitchctl output")
    queues = port.get("queues") or []

    def ring(r):
        return f"{r.get('size', 0)}{'' if r.get('enabled') else '*'}{'' if r.get('started') else '!'}"

    def up(r):
        return bool(r.get("started") and r.get("enabled"))
    running = sum(1 for q in queues if up(q.get("rx", {})) and up(q.get("tx", {})))
    enabled_rx = sum(1 for q in queues if up(q.get("rx", {})))
    desc = ",".join(f"{q.get('pair')}:{ring(q.get('rx', {}))}/{ring(q.get('tx', {}))}" for q in queues)
    mtu = port.get("frontend_mtu")  # an accepted NET_SET_MTU
    # The MTU the switch enforces towards the port and where it comes from (config, front-end, default).
    port_mtu = f"{port.get('mtu', '-')}/{port.get('mtu_source', '-')}"
    print(f"ring_type={port.get('ring_type')} mtu={'-' if mtu is None else mtu} port_mtu={port_mtu} "
          f"features={','.join(port.get('features') or []) or '-'} pairs={len(queues)} running={running} "
          f"enabled_rx={enabled_rx} queues={desc or '-'}")


def main(argv):
    if len(argv) < 3:
        die(__doc__)
    op, path = argv[1], argv[2]
    if op == "qmp" and len(argv) in (4, 5):
        cmd_qmp(path, argv[3], argv[4] if len(argv) == 5 else None)
    elif op == "dimm-add" and len(argv) == 5:
        cmd_dimm_add(path, argv[3], argv[4])
    elif op == "dimm-del" and len(argv) == 5:
        cmd_dimm_del(path, argv[3], argv[4])
    elif op == "ports-get" and len(argv) == 4:
        print(port_value(load_ports(path), argv[3]))
    elif op == "ports-vhost" and len(argv) == 4:
        cmd_ports_vhost(path, argv[3])
    elif op == "ports-check" and len(argv) >= 4:
        cmd_ports_check(path, argv[3:])
    elif op == "migrate" and len(argv) >= 5:
        opts = argv[5:]
        postcopy = "--postcopy" in opts
        timeout = float(opts[opts.index("--timeout") + 1]) if "--timeout" in opts else 120.0
        cmd_migrate(path, argv[3], argv[4], postcopy, timeout, "--paused" in opts)
    elif op == "mem-compare" and len(argv) == 4:
        cmd_mem_compare(path, argv[3])
    elif op == "fdb-port" and len(argv) == 4:
        cmd_fdb_port(path, argv[3])
    elif op == "guest":
        rest = argv[3:]
        timeout = 30.0
        if rest[:1] == ["-t"]:
            timeout = float(rest[1])
            rest = rest[2:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            die("guest: no command")
        cmd_guest(path, timeout, " ".join(rest))
    else:
        die(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (EOFError, OSError) as e:
        die(str(e))
