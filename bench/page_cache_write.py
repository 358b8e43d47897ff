"""What this machine charges for writing into the page cache: pwrite()s SIZE bytes at a
time, round-robin over FILES files in DIR, TOTAL bytes in all; prints the system CPU
seconds per GB (the kernel's copy into new page-cache pages), then removes the files.
A calibration for the brokers' CPU per GB: each acknowledged GB is written three times.
Usage: page_cache_write.py DIR [TOTAL] [FILES] [SIZE]
"""

import os
import resource
import sys

d = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 30
files = int(sys.argv[3]) if len(sys.argv) > 3 else 6
size = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
paths = [os.path.join(d, f"page-cache-{i}") for i in range(files)]
fds = [os.open(p, os.O_CREAT | os.O_TRUNC | os.O_WRONLY) for p in paths]
ends = [0] * files
buf = b"x" * size
before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
written = 0
while written < total:
    i = (written // size) % files
    os.pwrite(fds[i], buf, ends[i])
    ends[i] += size
    written += size
spent = resource.getrusage(resource.RUSAGE_SELF).ru_stime - before
for fd, p in zip(fds, paths):
    os.close(fd)
    os.unlink(p)
print(f"{spent / (written / 1e9):.2f}")
