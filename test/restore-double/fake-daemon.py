#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A broken lazy-pages daemon, to prove that lp-restore notices broken daemons.

Listens on WORKDIR/lazy-pages.socket like `criu lazy-pages`, writes one NUL byte to
--status-fd once listening, and reads restore's messages (int32 pid, then 1 byte with one
SCM_RIGHTS fd; int32 -pid for zombies; the finish word 0x52535446). It never serves a page:

  --mode close   close every uffd as soon as it arrives: lazy pages become zero pages
  --mode hold    keep the uffds open and never answer: faults hang until the watchdog
"""
import argparse
import array
import os
import socket
import struct
import sys
import time

RSTF = 0x52535446


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-W", "--work-dir", required=True)
    ap.add_argument("--status-fd", type=int)
    ap.add_argument("--mode", choices=["close", "hold"], default="close")
    ap.add_argument("--hold-seconds", type=float, default=60)
    a = ap.parse_args()

    os.chdir(a.work_dir)
    try:
        os.unlink("lazy-pages.socket")
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("lazy-pages.socket")
    srv.listen(10)
    if a.status_fd is not None:
        os.write(a.status_fd, b"\0")
        os.close(a.status_fd)
    conn, _ = srv.accept()
    srv.close()
    fds, tasks = [], 0
    while True:
        word = recv_exact(conn, 4)
        if word is None:
            print("fake-daemon: restore hung up before the finish word", file=sys.stderr)
            return 1
        (pid,) = struct.unpack("=i", word)
        if pid == struct.unpack("=i", struct.pack("=I", RSTF))[0]:
            break
        tasks += 1
        if pid < 0:
            continue
        fdsize = array.array("i").itemsize
        msg, anc, flags, _ = conn.recvmsg(1, socket.CMSG_SPACE(fdsize))
        got = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got += array.array("i", data[: len(data) - len(data) % fdsize]).tolist()
        if len(msg) != 1 or len(got) != 1:
            print(f"fake-daemon: pid {pid}: bad fd message", file=sys.stderr)
            return 1
        if a.mode == "close":
            os.close(got[0])
        else:
            fds += got
    print(f"fake-daemon: {tasks} task messages and the finish word; mode {a.mode}",
          file=sys.stderr)
    if a.mode == "hold":
        time.sleep(a.hold_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
