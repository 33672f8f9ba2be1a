#!/usr/bin/env python3
"""A stand-in for `lazypages daemon` in the plugin's tests.

Takes the daemon's options, records them, listens on WORKDIR/lazy-pages.socket (bound by a
relative name, like the real daemon), writes the readiness byte to --status-fd, accepts one
connection and exits 0 (1 if nobody connects within 20 s).
Env: FAKE_MODE ok|fail|hang, FAKE_RECORD (file: one line "pid PID ppid PPID", then argv
one per line).
"""
import os
import socket
import sys
import time

args = sys.argv[1:]
mode = os.environ.get("FAKE_MODE", "ok")
rec = os.environ.get("FAKE_RECORD")
if rec:
    with open(rec, "w") as f:
        f.write("pid %d ppid %d\n" % (os.getpid(), os.getppid()))
        f.write("\n".join(args) + "\n")


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


if mode == "fail":
    print("fake: cannot open the images in %s" % opt("-D"), file=sys.stderr)
    sys.exit(1)
if mode == "hang":
    time.sleep(60)
    sys.exit(1)
os.chdir(opt("-W", opt("-D", ".")))
try:
    os.unlink("lazy-pages.socket")
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("lazy-pages.socket")
s.listen(10)
sfd = opt("--status-fd")
if sfd is not None:
    os.write(int(sfd), b"\0")
    os.close(int(sfd))
s.settimeout(20)
try:
    c, _ = s.accept()
except socket.timeout:
    print("fake: nobody connected", file=sys.stderr)
    sys.exit(1)
s.close()
c.close()
print("fake: served", file=sys.stderr)
sys.exit(0)
