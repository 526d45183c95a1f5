#!/usr/bin/env python3
"""Print a sorted manifest of a directory tree, to check a restore against its source.

usage: manifest.py DIR [--no-mtime]

One line per entry below DIR (DIR itself excluded), sorted by relative path (bytes):
    f  PATH  MODE  SIZE  MTIME_S  SHA256     regular file
    l  PATH  TARGET                          symlink
    d  PATH  MODE                            directory
    o  PATH  MODE                            anything else (fifo, device, socket)
MTIME_S is the modification time in whole seconds (sub-second precision and directory
times are left out on purpose: they vary legitimately between tools). Two trees with
equal manifests have the same names, types, permissions, contents and symlink targets.
"""
import hashlib
import os
import stat
import sys


def entries(root, with_mtime):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = "%o" % stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                line = ("l", rel, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                line = ("d", rel, mode)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                mtime = str(int(st.st_mtime)) if with_mtime else "-"
                line = ("f", rel, mode, str(st.st_size), mtime, h.hexdigest())
            else:
                line = ("o", rel, mode)
            out.append(line)
    out.sort(key=lambda t: t[1].encode("utf-8", "surrogateescape"))
    return out


def main():
    args = sys.argv[1:]
    with_mtime = "--no-mtime" not in args
    args = [a for a in args if a != "--no-mtime"]
    if len(args) != 1 or not os.path.isdir(args[0]):
        sys.exit(__doc__)
    out = sys.stdout.buffer
    for t in entries(args[0], with_mtime):
        out.write("\t".join(t).encode("utf-8", "surrogateescape") + b"\n")


if __name__ == "__main__":
    main()
