#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Image tests that need crit (CRIU 3.17.1's image tool) and the lazypages binary.

  images_test.py crit-decode     images written by the library decode with `crit decode`
  images_test.py fixtures        fixtures/ encoded with `crit encode` (plus a CRIU 4.2
                                 pagemap built here) read by the library and `lazypages show`
  images_test.py corrupt         `lazypages show` on damaged checkpoints: exit 1, a message
                                 naming the file and the problem, no sanitizer report
  images_test.py build DIR [V]   just build the fixture checkpoint in DIR (img_version V)

Run from the repository root with $B set to the build directory (test/run.sh does).
Exits 0 on success, 77 when crit is missing, 1 on failure.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "images", "fixtures")
B = os.environ.get("B", "build")
TEST_IMAGES = os.path.join(ROOT, B, "test", "images", "test_images")
LAZYPAGES = os.path.join(ROOT, B, "lazypages")
PAGE = 4096

COMMON_MAGIC = 0x54564319
PSTREE_MAGIC = 0x50273030
PE_PARENT, PE_LAZY, PE_PRESENT = 1, 2, 4
FLAG_NAMES = {"PE_PARENT": PE_PARENT, "PE_LAZY": PE_LAZY, "PE_PRESENT": PE_PRESENT}

# Sanitizer reports get their own exit codes, so that they cannot pass for the expected 1.
ENV = dict(os.environ)
ENV["ASAN_OPTIONS"] = "exitcode=99:" + ENV.get("ASAN_OPTIONS", "")
ENV["UBSAN_OPTIONS"] = "exitcode=98:print_stacktrace=1:" + ENV.get("UBSAN_OPTIONS", "")
SAN_MARKERS = ("Sanitizer", "runtime error:")

failures = []


class Skip(Exception):
    pass


def check(cond, what):
    if cond:
        return True
    failures.append(what)
    print("  FAIL: " + what)
    return False


def check_eq(got, want, what):
    return check(got == want, "%s: got %r, want %r" % (what, got, want))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kw)


def crit():
    path = shutil.which("crit")
    if not path:
        raise Skip("crit not found (Debian package criu)")
    return path


def crit_decode(path, pretty=True):
    cmd = [crit(), "decode", "-i", path] + (["--pretty"] if pretty else [])
    r = run(cmd)
    if r.returncode != 0:
        raise AssertionError("crit decode %s failed (%d): %s" % (path, r.returncode, r.stderr))
    return json.loads(r.stdout)


def crit_encode(src, dst):
    r = run([crit(), "encode", "-i", src, "-o", dst])
    if r.returncode != 0:
        raise AssertionError("crit encode %s failed (%d): %s" % (src, r.returncode, r.stderr))


def need(path):
    if not os.path.exists(path):
        raise AssertionError("%s is missing: run make first" % path)


# ---- protobuf wire and CRIU image bytes, written by hand -----------------------------------

def varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fv(field, v):
    return varint(field << 3) + varint(v)


def fbytes(field, b):
    return varint(field << 3 | 2) + varint(len(b)) + b


def entry(msg):
    return struct.pack("<I", len(msg)) + msg


def parse_flags(v):
    if isinstance(v, int):
        return v
    return sum(FLAG_NAMES.get(x.strip(), 0) or int(x.strip(), 0)
               for x in v.split("|") if x.strip())


def pagemap_entries(img_json):
    """The entries of a crit pagemap JSON after CRIU's reading rules: (vaddr, nr, flags)."""
    out = []
    for e in img_json["entries"][1:]:
        flags = parse_flags(e["flags"]) if "flags" in e else None
        if e.get("in_parent"):
            flags = (flags or 0) | PE_PARENT
        elif flags is None:
            flags = PE_PRESENT
        out.append((int(e["vaddr"], 0), e["nr_pages"], flags))
    return out


def pagemap_v42(pages_id, entries):
    """A pagemap image as CRIU >= 4.2 writes it (field 2 = 0, count in field 5), with
    unknown fields sprinkled in that a reader must skip."""
    img = struct.pack("<II", COMMON_MAGIC, 0x56084025)
    img += entry(fv(1, pages_id) + fv(30, 1))
    for i, (vaddr, nr, flags) in enumerate(entries):
        m = fv(1, vaddr) + fv(2, 0) + fv(4, flags) + fv(5, nr)
        if i % 2 == 0:
            m = fv(20, 1000 + i) + m
        else:
            m += fbytes(21, b"lazypages-unknown-field") + fv(20, 0xFFFFFFFFFF)
        img += entry(m)
    return img


def pagemap_compat(pages_id, entries):
    """A pagemap image as CRIU <= 4.1 writes it (count in field 2)."""
    img = struct.pack("<II", COMMON_MAGIC, 0x56084025) + entry(fv(1, pages_id))
    for vaddr, nr, flags in entries:
        img += entry(fv(1, vaddr) + fv(2, nr) + fv(4, flags))
    return img


def page_pattern(vaddr, pages_id):
    """What test_images.c's page_pattern() expects in the page dumped from VADDR."""
    head = struct.pack("<QI", vaddr, pages_id) + b"LPTP"
    base = (vaddr >> 12) * 31 + pages_id * 7
    return head + bytes((base + i) & 0xFF for i in range(16, PAGE))


def pages_file(pages_id, entries):
    """pages-<id>.img: the PE_PRESENT runs, in pagemap order."""
    out = bytearray()
    for vaddr, nr, flags in entries:
        if flags & PE_PRESENT:
            for n in range(nr):
                out += page_pattern(vaddr + n * PAGE, pages_id)
    return bytes(out)


def load_json(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def build_fixture(dst, version=2):
    """The fixture checkpoint: crit-encoded images, pagemap-2 in the 4.2 encoding, pages files."""
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(FIXTURES)):
        if not name.endswith(".json") or name.endswith(".v42.json"):
            continue
        crit_encode(os.path.join(FIXTURES, name), os.path.join(dst, name[:-5] + ".img"))
    pm1 = load_json("pagemap-1.json")
    e1 = pagemap_entries(pm1)
    pm2 = load_json("pagemap-2.v42.json")
    e2 = pagemap_entries(pm2)
    with open(os.path.join(dst, "pagemap-2.img"), "wb") as f:
        f.write(pagemap_v42(pm2["entries"][0]["pages_id"], e2))
    for pm, e in ((pm1, e1), (pm2, e2)):
        pid = pm["entries"][0]["pages_id"]
        with open(os.path.join(dst, "pages-%d.img" % pid), "wb") as f:
            f.write(pages_file(pid, e))
    if version == 1:
        # img_version 1: no common magic in front of the per-type one.
        for name in os.listdir(dst):
            if name == "inventory.img" or name.startswith("pages-"):
                continue
            p = os.path.join(dst, name)
            with open(p, "rb") as f:
                data = f.read()
            assert struct.unpack("<I", data[:4])[0] == COMMON_MAGIC, name
            with open(p, "wb") as f:
                f.write(data[4:])
        set_inventory(dst, img_version=1)
    return dst


def set_inventory(d, **fields):
    inv = load_json("inventory.json")
    inv["entries"][0].update(fields)
    write_json_image(d, "inventory.img", inv)


def write_json_image(d, name, img):
    src = os.path.join(d, name + ".json")
    with open(src, "w") as f:
        json.dump(img, f)
    crit_encode(src, os.path.join(d, name))
    os.unlink(src)


# ---- crit-decode: what the library writes, seen by crit -------------------------------------

SAMPLE_PMES = [  # test_images.c sample_pmes
    ("0x400000", 1, "PE_PRESENT"),
    ("0x1000000", 3, "PE_LAZY | PE_PRESENT"),
    ("0x7f0000000000", 16, "PE_LAZY | PE_PRESENT"),
    ("0x7f0000011000", 300, "PE_LAZY | PE_PRESENT"),
    ("0x7f0000200000", 2, "PE_LAZY"),
    ("0x7fffffffe000", 1, "PE_PRESENT"),
]

SAMPLE_VMAS = [  # test_images.c sample_vmas, then the GUARD fake
    {"start": "0x400000", "end": "0x401000", "pgoff": 0, "shmid": 3,
     "prot": "PROT_READ | PROT_EXEC", "flags": "MAP_PRIVATE",
     "status": "VMA_AREA_REGULAR | VMA_FILE_PRIVATE", "fd": -1},
    {"start": "0x1000000", "end": "0x1003000", "pgoff": 0, "shmid": 0,
     "prot": "PROT_READ | PROT_WRITE", "flags": "MAP_PRIVATE | MAP_ANON",
     "status": "VMA_AREA_REGULAR | VMA_AREA_HEAP | VMA_ANON_PRIVATE", "fd": -1},
    {"start": "0x7f0000000000", "end": "0x7f0000400000", "pgoff": 0, "shmid": 0,
     "prot": "PROT_READ | PROT_WRITE", "flags": "MAP_PRIVATE | MAP_ANON",
     "status": "VMA_AREA_REGULAR | VMA_ANON_PRIVATE", "fd": -1, "madv": "0x10000"},
    {"start": "0x7ffffffde000", "end": "0x7ffffffff000", "pgoff": 0, "shmid": 0,
     "prot": "PROT_READ | PROT_WRITE", "flags": "MAP_PRIVATE | MAP_ANON | MAP_GROWSDOWN",
     "status": "VMA_AREA_REGULAR | VMA_AREA_STACK | VMA_ANON_PRIVATE", "fd": -1},
    {"start": "0x7f0000010000", "end": "0x7f0000011000", "pgoff": 0, "shmid": 0,
     "prot": "", "flags": "MAP_PRIVATE | MAP_ANON",
     "status": "VMA_AREA_REGULAR | VMA_ANON_PRIVATE | 0x10000", "fd": -1},
]


def crit_decode_test():
    need(TEST_IMAGES)
    crit()
    tmp = tempfile.mkdtemp(prefix="lpt-crit-")
    try:
        for version in (2, 1):
            d = os.path.join(tmp, "v%d" % version)
            os.mkdir(d)
            r = run([TEST_IMAGES, "gen-crit", d, str(version)])
            if not check_eq(r.returncode, 0, "test_images gen-crit: " + r.stderr):
                continue
            print("img_version %d: %s" % (version, " ".join(sorted(os.listdir(d)))))
            crit_check_sample(d, version)
    finally:
        cleanup(tmp)


def crit_check_sample(d, version):
    def dec(name):
        img = crit_decode(os.path.join(d, name))
        print("  crit decode %s: %d entries" % (name, len(img["entries"])))
        return img

    inv = dec("inventory.img")
    check_eq(inv["magic"], "INVENTORY", "inventory magic")
    check_eq(inv["entries"][0]["img_version"], version, "inventory img_version")
    check_eq(inv["entries"][0]["fdinfo_per_id"], True, "inventory fdinfo_per_id")
    check_eq(inv["entries"][0]["root_ids"],
             {"vm_id": 1, "files_id": 1, "fs_id": 1, "sighand_id": 1}, "inventory root_ids")

    ps = dec("pstree.img")
    check_eq(ps["magic"], "PSTREE", "pstree magic")
    check_eq(ps["entries"], [
        {"pid": 10, "ppid": 0, "pgid": 10, "sid": 10, "threads": [10, 11]},
        {"pid": 12, "ppid": 10, "pgid": 10, "sid": 10, "threads": [12]},
    ], "pstree entries")

    for pid, state, comm in ((10, "Alive", "lp-main"), (12, 2, "lp-zombie")):
        core = dec("core-%d.img" % pid)
        check_eq(core["magic"], "CORE", "core magic")
        e = core["entries"][0]
        check_eq(e["mtype"], "X86_64", "core-%d mtype" % pid)
        # crit names task_state 1 "Alive"; 2 (CRIU's TASK_DEAD) has no name in 3.17.1.
        check_eq(e["tc"]["task_state"], state, "core-%d task_state" % pid)
        check_eq(e["tc"]["comm"], comm, "core-%d comm" % pid)

    mm = dec("mm-10.img")
    check_eq(mm["magic"], "MM", "mm magic")
    check_eq(mm["entries"][0]["vmas"], SAMPLE_VMAS, "mm-10 vmas")
    raw = crit_decode(os.path.join(d, "mm-10.img"), pretty=False)
    check_eq([v["status"] >> 16 & 1 for v in raw["entries"][0]["vmas"]], [0, 0, 0, 0, 1],
             "mm-10 GUARD bit (1<<16) on the last VMA only")

    # LP_PM_COMPAT and LP_PM_BOTH read the same with crit 3.17.1: it skips field 5 as an
    # unknown field. LP_PM_V42 has 0 in field 2, which is all crit 3.17.1 knows: 0 pages.
    for name, pages_id, nr_known in (("pagemap-10.img", 1, True), ("pagemap-20.img", 2, True),
                                      ("pagemap-30.img", 3, False)):
        pm = dec(name)
        check_eq(pm["magic"], "PAGEMAP", name + " magic")
        check_eq(pm["entries"][0], {"pages_id": pages_id}, name + " head")
        want = [{"vaddr": v, "nr_pages": n if nr_known else 0, "flags": f}
                for v, n, f in SAMPLE_PMES]
        check_eq(pm["entries"][1:], want, name + " entries")
        raw = crit_decode(os.path.join(d, name), pretty=False)
        check_eq([e["vaddr"] for e in raw["entries"][1:]],
                 [int(v, 16) for v, _, _ in SAMPLE_PMES], name + " vaddr as integers")
        check_eq([e["flags"] for e in raw["entries"][1:]], [6 if "LAZY | " in f else
                 (2 if f == "PE_LAZY" else 4) for _, _, f in SAMPLE_PMES], name + " raw flags")


# ---- fixtures: crit encode -> library and lazypages show --------------------------------------

def expected_show():
    """What `lazypages show --json` must say about the fixture, from the JSON files, with the
    hand-checked totals asserted alongside."""
    e1 = pagemap_entries(load_json("pagemap-1.json"))
    e2 = pagemap_entries(load_json("pagemap-2.v42.json"))

    def sums(e):
        return (sum(n for _, n, _ in e), sum(n for _, n, f in e if f & PE_LAZY),
                sum(n for _, n, f in e if f & PE_PRESENT))

    s1, s2 = sums(e1), sums(e2)
    check_eq(s1, (28, 18, 24), "pagemap-1.json: pages, lazy, present")
    check_eq(s2, (241, 222, 241), "pagemap-2.v42.json: pages, lazy, present")
    return {
        1: {"ppid": 0, "state": "alive", "threads": 2, "vmas": 9, "guard_vmas": 2,
            "lazy_vmas": 3, "pagemap_entries": len(e1), "pages": s1[0], "lazy_pages": s1[1],
            "lazy_bytes": s1[1] * PAGE, "present_pages": s1[2], "parent_pages": 2,
            "remote_only_pages": 2, "pages_id": 1, "pages_file_bytes": s1[2] * PAGE,
            "vma_kinds": {"anon": 1, "heap": 1, "stack": 1, "file": 2, "shmem": 1, "vdso": 1,
                          "vvar": 1, "vsyscall": 1}},
        2: {"ppid": 1, "state": "alive", "threads": 3, "vmas": 5, "guard_vmas": 1,
            "lazy_vmas": 3, "pagemap_entries": len(e2), "pages": s2[0], "lazy_pages": s2[1],
            "lazy_bytes": s2[1] * PAGE, "present_pages": s2[2], "parent_pages": 0,
            "remote_only_pages": 0, "pages_id": 2, "pages_file_bytes": s2[2] * PAGE,
            "vma_kinds": {"anon": 2, "heap": 1, "stack": 1, "file": 1}},
        3: {"ppid": 1, "state": "zombie", "threads": 1, "vmas": 0, "guard_vmas": 0,
            "pages": 0, "lazy_pages": 0, "pagemap_entries": 0},
    }


def fixtures_test():
    need(TEST_IMAGES)
    need(LAZYPAGES)
    want = expected_show()
    tmp = tempfile.mkdtemp(prefix="lpt-fixture-")
    try:
        for version in (2, 1):
            d = build_fixture(os.path.join(tmp, "v%d" % version), version)
            print("fixture img_version %d: %s" % (version, " ".join(sorted(os.listdir(d)))))
            # crit, too, reads our CRIU 4.2 pagemap: valid protobuf, unknown fields and all
            pm2 = crit_decode(os.path.join(d, "pagemap-2.img"))
            check_eq([(e["vaddr"], e["nr_pages"]) for e in pm2["entries"][1:]],
                     [(hex(v), 0) for v, _, _ in pagemap_entries(load_json("pagemap-2.v42.json"))],
                     "crit 3.17.1 on the 4.2 pagemap: vaddrs, and 0 pages (field 2)")

            r = run([TEST_IMAGES, "check-fixture", d, str(version)])
            print(r.stdout + r.stderr[-3000:])
            check_eq(r.returncode, 0, "test_images check-fixture (img_version %d)" % version)

            r = run([LAZYPAGES, "show", "--json", d])
            if not check_eq(r.returncode, 0, "lazypages show --json exit status: " + r.stderr):
                continue
            no_sanitizer(r.stderr, "show --json")
            out = json.loads(r.stdout)
            check_eq(out["img_version"], version, "show img_version")
            check_eq(out["page_size"], PAGE, "show page_size")
            check_eq(out["dir"], d, "show dir")
            procs = {p["pid"]: p for p in out["processes"]}
            check_eq(sorted(procs), [1, 2, 3], "show pids")
            for pid, w in want.items():
                for k, v in w.items():
                    check_eq(procs.get(pid, {}).get(k), v, "show pid %d %s" % (pid, k))
            check_eq(out["totals"], {"processes": 3, "pages": 269, "lazy_pages": 240,
                                     "lazy_bytes": 240 * PAGE}, "show totals")

            r = run([LAZYPAGES, "show", d])
            check_eq(r.returncode, 0, "lazypages show exit status")
            no_sanitizer(r.stderr, "show")
            for s in ("pid 1 (ppid 0), alive, 2 threads", "pid 3 (ppid 1), zombie, 1 thread",
                      "VMAs:   9 (", "3 lazy-eligible, 2 guard ranges",
                      "Pages:  241 dumped", "222 lazy", "File:   pages-2.img",
                      "2 lazy pages are not in the images",
                      "2 pages live in the parent checkpoint",
                      "Total: 3 processes, 6 threads, 269 pages dumped, 240 lazy"):
                check(s in r.stdout, "show (human) says %r" % s)
    finally:
        cleanup(tmp)


def no_sanitizer(text, what):
    for m in SAN_MARKERS:
        check(m not in text, "%s: sanitizer report:\n%s" % (what, text))


# ---- corrupt: lazypages show on damaged checkpoints ------------------------------------------

def patch(d, name, fn):
    p = os.path.join(d, name)
    with open(p, "rb") as f:
        data = f.read()
    with open(p, "wb") as f:
        f.write(fn(data))


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def entry_offsets(data, start):
    """Offsets of the entries of an image whose first entry is at START."""
    offs = []
    while start < len(data):
        offs.append(start)
        start += 4 + struct.unpack("<I", data[start:start + 4])[0]
    return offs


def pm1_entries():
    return pagemap_entries(load_json("pagemap-1.json"))


def pm1_with(fn):
    e = pm1_entries()
    fn(e)
    return lambda d: write(d, "pagemap-1.img", pagemap_compat(1, e))


def mm1_json_with(fn):
    def apply(d):
        mm = load_json("mm-1.json")
        fn(mm["entries"][0]["vmas"])
        write_json_image(d, "mm-1.img", mm)
    return apply


def swap(e, i, j):
    e[i], e[j] = e[j], e[i]


def set_entry(e, i, vaddr=None, nr=None, flags=None):
    v, n, f = e[i]
    e[i] = (v if vaddr is None else vaddr, n if nr is None else nr, f if flags is None else flags)


def undecodable(data):
    offs = entry_offsets(data, 8)
    o = offs[2]
    n = struct.unpack("<I", data[o:o + 4])[0]
    return data[:o + 4] + b"\xff" * n + data[o + 4 + n:]


def dup_pid(d):
    ps = load_json("pstree.json")
    ps["entries"].append(dict(ps["entries"][1]))
    write_json_image(d, "pstree.img", ps)


# (name, how to damage the fixture dir, file, substrings the error must contain)
CORRUPT = [
    ("common-magic", lambda d: patch(d, "pagemap-1.img", lambda b: b"\xef\xbe\xad\xde" + b[4:]),
     "pagemap-1.img", ["bad common magic 0xdeadbeef (expected 0x54564319)"]),
    ("type-magic", lambda d: patch(d, "mm-2.img",
                                   lambda b: b[:4] + struct.pack("<I", PSTREE_MAGIC) + b[8:]),
     "mm-2.img", ["bad magic 0x50273030 (pstree), expected 0x57492820 (mm)"]),
    ("v1-inventory-v2-images", lambda d: set_inventory(d, img_version=1),
     "pstree.img", ["bad magic 0x54564319 (common), expected 0x50273030 (pstree)"]),
    ("truncated-magic", lambda d: patch(d, "pstree.img", lambda b: b[:6]),
     "pstree.img", ["truncated: 6 bytes, no room for the pstree magic"]),
    ("empty-inventory", lambda d: write(d, "inventory.img", b""),
     "inventory.img", ["truncated: 0 bytes, no room for the inventory magic"]),
    ("truncated-entry-header", lambda d: patch(d, "pagemap-2.img", lambda b: b + b"\x01\x00"),
     "pagemap-2.img", ["truncated entry header at offset", "(2 bytes left, need 4)"]),
    ("length-past-eof", lambda d: patch(d, "pstree.img", lambda b: b[:-1]),
     "pstree.img", ["entry 2 at offset", "runs past the end of the file",
                    "truncated or corrupt image"]),
    ("length-0xffffffff", lambda d: patch(d, "mm-1.img", lambda b: b[:8] + b"\xff" * 4 + b[12:]),
     "mm-1.img", ["entry 0 at offset 8: length 4294967295 runs past the end of the file"]),
    ("undecodable", lambda d: patch(d, "pagemap-1.img", undecodable),
     "pagemap-1.img", ["entry 2 at offset", "cannot decode", "as pagemap_entry"]),
    ("duplicate-pid", dup_pid, "pstree.img", ["entry 3: pid 2 appears twice"]),
    ("out-of-order", pm1_with(lambda e: swap(e, 2, 3)),
     "pagemap-1.img", ["entry 4 at 0x601000 comes before entry 3 [0x7f0000000000, 0x7f0000004000)",
                       "entries must be sorted and must not overlap"]),
    ("overlap", pm1_with(lambda e: set_entry(e, 3, nr=5)),
     "pagemap-1.img", ["entry 5 at 0x7f0000004000 overlaps entry 4 "
                       "[0x7f0000000000, 0x7f0000005000)"]),
    ("zero-pages", lambda d: write(d, "pagemap-2.img", pagemap_v42(
        2, [(v, 0 if v == 0x1000000 else n, f) for v, n, f in
            pagemap_entries(load_json("pagemap-2.v42.json"))])),
     "pagemap-2.img", ["entry 2 at 0x1000000: bad page count 0"]),
    ("v42-read-as-old", lambda d: write(d, "pagemap-2.img", pagemap_compat(
        2, [(v, 0, f) for v, n, f in pagemap_entries(load_json("pagemap-2.v42.json"))])),
     "pagemap-2.img", ["entry 1 at 0x400000: bad page count 0 (a CRIU 4.2+ image read as an "
                       "old one?)"]),
    ("unaligned-vaddr", pm1_with(lambda e: set_entry(e, 2, vaddr=0x601800)),
     "pagemap-1.img", ["entry 3: vaddr 0x601800 is not page aligned"]),
    ("parent-and-present", pm1_with(lambda e: set_entry(e, 0, flags=PE_PARENT | PE_PRESENT)),
     "pagemap-1.img", ["entry 1 at 0x400000: both PE_PARENT and PE_PRESENT"]),
    ("unaligned-vma", mm1_json_with(lambda v: v[0].update(end="0x401800")),
     "mm-1.img", ["vma 0 [0x400000, 0x401800): empty or not page aligned"]),
    ("overlapping-vmas", mm1_json_with(lambda v: v[2].update(start="0x600000")),
     "mm-1.img", ["vma 2 [0x600000, 0x604000) overlaps or precedes the one before it "
                  "(ending at 0x601000)"]),
    ("short-pages-file", lambda d: patch(d, "pages-2.img", lambda b: b[:-PAGE]),
     "pages-2.img", ["holds %d bytes but the pagemap says %d: truncated pages file"
                     % (240 * PAGE, 241 * PAGE)]),
    ("missing-pages-file", lambda d: os.unlink(os.path.join(d, "pages-1.img")),
     "pages-1.img", ["cannot open: No such file or directory"]),
    ("missing-pagemap", lambda d: os.unlink(os.path.join(d, "pagemap-2.img")),
     "pagemap-2.img", ["missing: no page map for pid 2"]),
    ("missing-mm", lambda d: os.unlink(os.path.join(d, "mm-1.img")),
     "mm-1.img", ["missing: no memory layout for pid 1"]),
    ("missing-pstree", lambda d: os.unlink(os.path.join(d, "pstree.img")),
     "pstree.img", ["missing: the checkpoint has no process tree"]),
    ("missing-inventory", lambda d: os.unlink(os.path.join(d, "inventory.img")),
     "inventory.img", ["missing: is "]),
    ("img-version-3", lambda d: set_inventory(d, img_version=3),
     "inventory.img", ["unsupported img_version 3 (expected 1 or 2)"]),
    ("img-version-0", lambda d: set_inventory(d, img_version=0),
     "inventory.img", ["unsupported img_version 0 (expected 1 or 2)"]),
]


def corrupt_test():
    need(LAZYPAGES)
    tmp = tempfile.mkdtemp(prefix="lpt-corrupt-")
    try:
        good = build_fixture(os.path.join(tmp, "good"))
        r = run([LAZYPAGES, "show", "--json", good])
        check_eq(r.returncode, 0, "show on the undamaged fixture: " + r.stderr)
        for name, damage, fname, msgs in CORRUPT:
            d = os.path.join(tmp, name)
            shutil.copytree(good, d)
            damage(d)
            r = run([LAZYPAGES, "show", "--json", d])
            print("%-24s exit %d: %s" % (name, r.returncode,
                                         (r.stderr.strip().splitlines() or ["(nothing)"])[0]))
            check_eq(r.returncode, 1, name + ": exit status (stderr: %s)" % r.stderr)
            check_eq(r.stdout, "", name + ": nothing on stdout")
            no_sanitizer(r.stderr, name)
            # The message names the file (with its directory) and the problem.
            for m in msgs:
                check(any("%s/%s: " % (d, fname) in line and m in line
                          for line in r.stderr.splitlines()),
                      "%s: stderr names %s/%s and says %r:\n%s" % (name, d, fname, m, r.stderr))
    finally:
        cleanup(tmp)


def cleanup(tmp):
    if os.environ.get("LPT_KEEP"):
        print("LPT_KEEP: leaving " + tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    tests = {"crit-decode": crit_decode_test, "fixtures": fixtures_test, "corrupt": corrupt_test}
    try:
        if len(argv) >= 3 and argv[1] == "build":
            build_fixture(argv[2], int(argv[3]) if len(argv) > 3 else 2)
            return 0
        if len(argv) != 2 or argv[1] not in tests:
            print(__doc__, file=sys.stderr)
            return 2
        tests[argv[1]]()
    except Skip as e:
        print("SKIP: %s" % e)
        return 77
    except AssertionError as e:
        failures.append(str(e))
        print("FAIL: %s" % e)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
