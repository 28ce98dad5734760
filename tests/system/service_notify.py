#!/usr/bin/env python3
"""Plays systemd's side of sd_notify(3) for one vuswitchd run: binds a datagram socket,
starts vuswitchd with NOTIFY_SOCKET (and WATCHDOG_USEC if asked) pointing at it, and
checks the notifications against what the daemon does:

  READY=1     arrives once, and when it does the control socket already answers
              (`vuswitchctl show ports` lists the port) and the vhost-user socket exists
  STATUS=     comes with READY=1 and names the ports and PMD cores
  WATCHDOG=1  with --watchdog-usec: pings at most WATCHDOG_USEC/2 (+ slack) apart;
              without it: none at all
  STOPPING=1  after SIGTERM, before vuswitchd exits with status 0

Usage: service_notify.py --vuswitchd BIN --vuswitchctl BIN --dir TMPDIR --prefix P
                         [--watchdog-usec N] [--observe SECONDS]
Prints "ok: ..." / "MISMATCH: ..." lines; exit 0 when every check passed, 1 otherwise.
"""
import argparse
import os
import signal
import socket
import stat
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vuswitchd", required=True)
    ap.add_argument("--vuswitchctl", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--watchdog-usec", type=int, default=0)
    ap.add_argument("--observe", type=float, default=4.0)
    a = ap.parse_args()

    errors = []

    def check(ok, what):
        print(("ok: " if ok else "MISMATCH: ") + what, flush=True)
        if not ok:
            errors.append(what)

    notify_path = os.path.join(a.dir, "notify.sock")
    ctl = os.path.join(a.dir, "vuswitchd.ctl")
    vhost = os.path.join(a.dir, "vm1.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    if a.watchdog_usec:
        env["WATCHDOG_USEC"] = str(a.watchdog_usec)
    cmd = [a.vuswitchd, "--no-huge", "--memory", "128", "--lcores", "0,1", "--file-prefix", a.prefix,
           "--run-dir", a.dir, "--control", ctl, "--metrics", "off", "--vhost-user", vhost]
    log = open(os.path.join(a.dir, "vuswitchd.log"), "w")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    messages = []  # (monotonic time, field)

    def receive(until, stop_at=None):
        """Collect notification fields until `until` (monotonic) or a field in stop_at."""
        while time.monotonic() < until:
            sock.settimeout(max(0.01, until - time.monotonic()))
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            now = time.monotonic()
            fields = [f for f in data.decode().split("\n") if f]
            messages.extend((now, f) for f in fields)
            for f in fields:
                if stop_at and f in stop_at:
                    return f
        return None

    try:
        got = receive(time.monotonic() + 60, {"READY=1"})
        check(got == "READY=1", "READY=1 received within 60 s of start (vuswitchd running: %s)" % (proc.poll() is None))
        if got != "READY=1":
            return 1
        # At READY=1 the daemon must already serve: ask it right away.
        r = subprocess.run([a.vuswitchctl, "--control", ctl, "show", "ports"], capture_output=True, text=True, timeout=10)
        check(r.returncode == 0 and "vm1" in r.stdout,
              "at READY=1 the control socket answers and lists port vm1 (vuswitchctl exit %d)" % r.returncode)
        check(os.path.exists(vhost) and stat.S_ISSOCK(os.stat(vhost).st_mode),
              "at READY=1 the vhost-user socket %s listens" % vhost)
        status = [f for _, f in messages if f.startswith("STATUS=")]
        check(bool(status) and "ports: 1," in status[0] and "PMD cores: 1" in status[0],
              "STATUS= with READY=1 names the ports and PMD cores: %r" % status)
        t_ready = next(t for t, f in messages if f == "READY=1")
        receive(t_ready + a.observe)
        pings = [t for t, f in messages if f == "WATCHDOG=1"]
        if a.watchdog_usec:
            period = a.watchdog_usec / 1e6
            want = int(a.observe / (period / 2)) - 1
            check(len(pings) >= want, "WATCHDOG=1 %d times in %.1f s with WATCHDOG_USEC=%d (at least %d)"
                  % (len(pings), a.observe, a.watchdog_usec, want))
            gaps = [b - a_ for a_, b in zip([t_ready] + pings, pings + [time.monotonic()])]
            check(max(gaps) < period, "watchdog pinged about every %.1f s, never a whole WATCHDOG_USEC (%.1f s) "
                  "apart (largest gap %.2f s)" % (period / 2, period, max(gaps)))
        else:
            check(not pings, "no WATCHDOG=1 without WATCHDOG_USEC (%d pings)" % len(pings))
        check(sum(1 for _, f in messages if f == "READY=1") == 1, "READY=1 sent once")
        check(not any(f == "STOPPING=1" for _, f in messages), "no STOPPING=1 while running")

        proc.send_signal(signal.SIGTERM)
        got = receive(time.monotonic() + 10, {"STOPPING=1"})
        check(got == "STOPPING=1", "STOPPING=1 after SIGTERM")
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "vuswitchd exit status on SIGTERM: %s" % rc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
