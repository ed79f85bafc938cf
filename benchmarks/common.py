"""Shared helpers for the benchmarks: machine description, timing, peak memory, tables.

Every benchmark measures tfcolor and its peer in the same run and prints one table with ratios,
preceded by :func:`machine_description`, so that numbers are never compared across machines.
"""
import os
import platform
import resource
import subprocess
import sys
import time


def machine_description():
    """One line naming the CPU, core count, memory and library versions of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
        mem_gib = mem_kib / 2**20
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for name in ("tensorflow", "keras", "numpy", "torch", "cv2", "skimage"):
        module = sys.modules.get(name)
        if module is not None:
            versions.append(f"{name} {getattr(module, '__version__', '?')}")
    mem = f", {mem_gib:.0f} GiB" if mem_gib else ""
    flags = [f"{name}={os.environ[name]}" for name in ("XLA_FLAGS", "TF_XLA_FLAGS")
             if os.environ.get(name)]
    return (f"machine: {cpu}, {os.cpu_count()} cores{mem}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}; " + ", ".join(versions)
            + ("; " + ", ".join(flags) if flags else ""))


def measure(fn, *, warmup=2, min_time=2.0, min_repeats=3):
    """Seconds per call of ``fn()``: the median of repeated timed calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_isolated(argv, timeout=1800):
    """Runs ``argv`` in a fresh process (for peak-memory measurements) and returns its stdout."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def print_table(headers, rows, title=None):
    """Prints a Markdown table (so it can be pasted into the README as is)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def _fmt(value):
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return f"{value:.3e}"
    return str(value)
