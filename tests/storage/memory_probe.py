"""Peak-RSS probe for write_stream and extract_zip, run as a subprocess by test_memory.py.

Usage: python memory_probe.py <work dir> <MiB>

Imports once, then runs each measured step in a forked child, so every step starts from the
same baseline and its peak (``ru_maxrss``) is its own. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
import zipfile

from airflow.sdk import ObjectStoragePath

from airflow_provider_canvas_reports.storage import extract_zip, write_stream

MiB = 1 << 20


def csv_block() -> bytes:
    """1 MiB of CSV text: a 4 KiB run of random rows, repeated. It deflates ~50x: far under the
    ratio limit, yet each 1 MiB of output comes from ~20 KiB of input, which exercises the
    bounded-output inflate loop; and it compresses fast, which keeps the test short."""
    rng = random.Random(7)
    lines, size = [], 0
    while size < 4096:
        line = f"{rng.randrange(10**9)},user{rng.randrange(10**6)}@school.edu,{rng.choice(['active', 'deleted'])}\n"
        lines.append(line)
        size += len(line)
    run = "".join(lines).encode()[:4096]
    return run * (MiB // len(run))


def stream(total_mib: int, block: bytes):
    for i in range(total_mib):
        yield i.to_bytes(8, "little") + block[8:]  # every MiB differs


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measured(step) -> dict:
    """Run ``step()`` in a forked child; return its baseline/peak RSS and duration."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        result: dict = {}
        try:
            baseline = peak_mib()
            started = time.perf_counter()
            result = step()
            result.update(
                baseline_mib=round(baseline, 1),
                peak_mib=round(peak_mib(), 1),
                growth_mib=round(peak_mib() - baseline, 1),
                seconds=round(time.perf_counter() - started, 2),
            )
        except BaseException as exc:
            result = {"error": repr(exc)}
        finally:
            os.write(write_fd, json.dumps(result).encode())
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.waitpid(pid, 0)
    return json.loads(data)


def main() -> None:
    work, total_mib = sys.argv[1], int(sys.argv[2])
    total = total_mib * MiB
    block = csv_block()
    dest = ObjectStoragePath(f"file://{work}/out/")
    # Warm-up: lazy imports and first-use caches are not what we measure.
    write_stream(iter([b"x"]), dest / "warmup.csv", expected_size=1)

    def write_step() -> dict:
        landed = write_stream(stream(total_mib, block), dest / "big.csv", expected_size=total)
        assert landed.size == total
        return {"bytes": landed.size}

    archive = f"{work}/big.zip"

    def build_zip() -> None:
        with (
            zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
            zf.open("users.csv", "w", force_zip64=True) as f,
        ):
            for chunk in stream(total_mib, block):
                f.write(chunk)

    def extract_step() -> dict:
        (landed,) = extract_zip(archive, ObjectStoragePath(f"file://{work}/unzipped/"))
        assert landed.size == total
        return {"bytes": landed.size, "zip_bytes": os.path.getsize(archive)}

    report = {"write_stream": measured(write_step)}
    os.unlink(f"{work}/out/big.csv")
    build_zip()
    report["extract_zip"] = measured(extract_step)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
