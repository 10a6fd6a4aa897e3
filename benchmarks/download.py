"""Download throughput and ZIP extraction, side by side with curl and unzip.

Download: a report file (1 GiB of CSV) from the simulator, through Canvas's redirect chain
(Canvas host with the token -> files host -> its own URL for a CSV, with the session cookie the
signed link set -> store), into a ``file://`` folder, with the DownloadReportOperator as a task
runs it (size check, SHA-256, temp file, fsync, rename).
Reference: ``curl -sS -L -b '' -o FILE <files-host URL>`` (``-b ''``: curl's cookie engine, for
the files host's session). curl gets the signed, token-free link that the Canvas host redirects
to (resolved just before each curl run), so it follows two redirects (files host -> files host
-> store) and never holds the token; the provider also makes the first hop itself. That hop is
one small request on localhost (about a millisecond against seconds of transfer).
A second reference does the provider's work in shell, in one pass with the hash in its own
process: ``curl -sS -L -b '' URL | tee FILE | openssl dgst -sha256``. A third is a floor, not a
client: SHA-256 alone of as many bytes already in memory (hashlib, as the provider hashes). The
hash is sequential, so no client that hashes every byte can take less time than that; curl's
time over it is the best ratio such a client could reach on this machine.

ZIP extraction: ``storage.extract_zip`` of the same archive (a provisioning ZIP holding 1 GiB of
CSV) into a ``file://`` folder, against ``unzip -q -o ZIP -d DIR``. Both check CRC-32; the
provider also computes SHA-256, enforces the ZIP-bomb limits, writes temp files, fsyncs and renames.

Outputs go to tmpfs (/dev/shm) when available, so that the disk, whose speed drifts most on a
shared machine, stays out of the comparison; the simulator runs in its own process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

from benchmarks._common import (
    GiB,
    MiB,
    SimProcess,
    arg_parser,
    cache_dir,
    cpu_seconds,
    emit,
    median,
    run_child,
    say,
    scratch_dir,
    task_context,
    throughput,
    verdict,
    wait_complete,
)

CSV_REPORT = "last_user_access_csv"
ZIP_REPORT = "provisioning_csv"
ZIP_PARAMS = {"users": True, "courses": True, "enrollments": True}
GOAL_DOWNLOAD = 0.9
GOAL_UNZIP = 0.8


def _tool(name: str) -> str | None:
    return shutil.which(name)


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def _files_url(sim: SimProcess, report: Any) -> str:
    """The signed files-host link the Canvas host redirects to (asked with the token, once)."""
    import requests

    resp = requests.get(
        sim.url + f"/files/{report.attachment.id}/download",
        headers={"Authorization": f"Bearer {sim.token}"},
        allow_redirects=False,
        timeout=30,
    )
    if resp.status_code != 302:
        raise RuntimeError(f"expected the Canvas host to redirect, got {resp.status_code}")
    return str(resp.headers["location"])


def provider_download(report_type: str, report_id: int, dest: Path) -> dict[str, Any]:
    """The operator's execute(), timed: wall and this process's CPU (all threads)."""
    from airflow_provider_canvas_reports.operators.download import DownloadReportOperator

    op = DownloadReportOperator(
        task_id="bench_download",
        report=report_type,
        report_id=report_id,
        destination=f"file://{dest}/",
        extract_zip=False,
        asset_alias=None,
    )
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    landed = op.execute(context=task_context(op.task_id))  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {"wall": wall, "cpu": cpu, "size": sum(obj["size"] for obj in landed)}


def curl_sha_download(url: str, dest: Path) -> dict[str, Any]:
    """The same work as the provider in shell: download, write and SHA-256 in one pass."""
    script = f"curl -sS -L -b '' --fail '{url}' | tee '{dest / 'curl.csv'}' | openssl dgst -sha256 >/dev/null"
    out = run_child(["bash", "-o", "pipefail", "-c", script])
    if out["returncode"] != 0:
        raise RuntimeError(f"curl | tee | openssl failed ({out['returncode']})")
    return {"wall": out["wall"], "cpu": out["cpu"], "size": (dest / "curl.csv").stat().st_size}


def curl_download(url: str, dest: Path) -> dict[str, Any]:
    out = run_child(
        [
            "curl",
            "-sS",
            "-L",
            "-b",
            "",  # the cookie engine: the files host's session (a CSV takes its own URL next)
            "--fail",
            "-o",
            str(dest / "curl.csv"),
            "-w",
            "%{size_download} %{num_redirects}",
            url,
        ]
    )
    if out["returncode"] != 0:
        raise RuntimeError(f"curl failed ({out['returncode']})")
    size, redirects = out["stdout"].split()
    return {"wall": out["wall"], "cpu": out["cpu"], "size": int(size), "redirects": int(redirects)}


def sha256_alone(size: int) -> dict[str, Any]:
    """SHA-256 of ``size`` bytes already in memory, 4 MiB at a time, on one thread."""
    block = memoryview(os.urandom(4 * MiB))
    digest = hashlib.sha256()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for _ in range(size // len(block)):
        digest.update(block)
    digest.update(block[: size % len(block)])
    return {"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - cpu0, "size": size}


def provider_extract(zip_path: Path, dest: Path) -> dict[str, Any]:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_canvas_reports.storage import extract_zip

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    landed = extract_zip(zip_path, ObjectStoragePath(f"file://{dest}/"))
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {"wall": wall, "cpu": cpu, "size": sum(obj.size for obj in landed)}


def unzip_extract(zip_path: Path, dest: Path) -> dict[str, Any]:
    out = run_child(["unzip", "-q", "-o", str(zip_path), "-d", str(dest)])
    if out["returncode"] != 0:
        raise RuntimeError(f"unzip failed ({out['returncode']})")
    return {"wall": out["wall"], "cpu": out["cpu"]}


def side_by_side(rounds: int, runs: dict[str, Any], reset: Any) -> dict[str, list[dict]]:
    """Run each (None: skipped) once per round, the order rotating each round so drift hits all."""
    names = [name for name, run in runs.items() if run is not None]
    out: dict[str, list[dict]] = {name: [] for name in runs}
    for n in range(rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            reset()
            out[name].append(runs[name]())
    reset()
    return out


def summarise(label: str, size: int, ours: list[dict], theirs: list[dict], ref: str) -> dict[str, Any]:
    ours_wall = median([r["wall"] for r in ours])
    ours_cpu = median([r["cpu"] for r in ours])
    result: dict[str, Any] = {
        "size_bytes": size,
        "rounds": len(ours),
        "provider_mib_s": round(throughput(size, ours_wall), 1),
        "provider_cpu_s_per_gib": round(ours_cpu * GiB / size, 2),
        "provider_runs_s": [round(r["wall"], 3) for r in ours],
    }
    line = f"{label}: provider {result['provider_mib_s']} MiB/s (median of {len(ours)})"
    if theirs:
        ref_wall = median([r["wall"] for r in theirs])
        ref_cpu = median([r["cpu"] for r in theirs])
        # Ratio of throughputs = inverse ratio of times; median of per-round ratios resists drift.
        ratios = [t["wall"] / o["wall"] for o, t in zip(ours, theirs, strict=False)]
        result.update(
            reference=ref,
            reference_mib_s=round(throughput(size, ref_wall), 1),
            reference_cpu_s_per_gib=round(ref_cpu * GiB / size, 2),
            reference_runs_s=[round(r["wall"], 3) for r in theirs],
            ratio=round(median(ratios), 3),
        )
        line += f", {ref} {result['reference_mib_s']} MiB/s: ratio {result['ratio']}"
    else:
        result.update(reference=f"{ref} (not installed: skipped)", ratio=None)
        line += f"; {ref} not installed, reference SKIPPED"
    say(line)
    return result


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--size-mib", type=int, help="report size (default 1024; smoke 8)")
    parser.add_argument("--rounds", type=int, help="side-by-side rounds (default 3; smoke 1)")
    args = parser.parse_args()
    size = (args.size_mib or (8 if args.smoke else 1024)) * MiB
    rounds = args.rounds or (1 if args.smoke else 3)
    curl, unzip, openssl = _tool("curl"), _tool("unzip"), _tool("openssl")
    for name, path in (("curl", curl), ("unzip", unzip), ("openssl", openssl)):
        if path is None:
            say(f"NOTE: {name} is not installed: its reference is skipped (scripts/bench.sh installs it).")

    sim_cfg = {
        "users": 200,
        "pad_to_bytes": size,
        "run_seconds": 0.0,
        "throttle": None,
        "data_dir": str(cache_dir() / "sim-data"),
        "generation_workers": 2,
    }
    say(f"download: {size / MiB:.0f} MiB reports; simulator data cached in {sim_cfg['data_dir']}")
    with SimProcess(**sim_cfg) as sim:
        sim.connect()
        from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

        hook = CanvasHook()
        t0 = time.perf_counter()
        csv_id = hook.start_report(CSV_REPORT, {}).id
        zip_id = hook.start_report(ZIP_REPORT, ZIP_PARAMS).id
        sim.call("idle", timeout=1800)
        csv_report = wait_complete(hook, CSV_REPORT, csv_id)
        zip_report = wait_complete(hook, ZIP_REPORT, zip_id)
        say(f"reports ready in {time.perf_counter() - t0:.1f}s (generated once, then cached)")
        csv_size = csv_report.attachment.size

        out = scratch_dir("canvas-bench-dl-")
        # One untimed run first: the first task of a process also imports and warms things.
        provider_download(CSV_REPORT, csv_id, out)
        _empty(out)
        runs = side_by_side(
            rounds,
            {
                "provider": lambda: provider_download(CSV_REPORT, csv_id, out),
                "curl": (lambda: curl_download(_files_url(sim, csv_report), out)) if curl else None,
                "curl_sha": (lambda: curl_sha_download(_files_url(sim, csv_report), out))
                if curl and openssl
                else None,
                "sha256": lambda: sha256_alone(csv_size),
            },
            lambda: _empty(out),
        )
        ours, theirs = runs["provider"], runs["curl"]
        assert all(r["size"] == csv_size for rs in runs.values() for r in rs), "a download has the wrong size"
        assert all(r.get("redirects", 2) == 2 for r in theirs)
        counters = sim.counters()
        download = summarise("download", csv_size, ours, theirs, "curl -L")
        same_work = summarise("download", csv_size, ours, runs["curl_sha"], "curl -L | tee | openssl sha256")
        download.update(
            same_work_reference=same_work["reference"],
            same_work_mib_s=same_work.get("reference_mib_s"),
            same_work_cpu_s_per_gib=same_work.get("reference_cpu_s_per_gib"),
            same_work_ratio=same_work["ratio"],
        )
        floor = runs["sha256"]
        download.update(
            sha256_alone_mib_s=round(throughput(csv_size, median([r["wall"] for r in floor])), 1),
            sha256_alone_cpu_s_per_gib=round(median([r["cpu"] for r in floor]) * GiB / csv_size, 2),
        )
        if theirs:
            bound = median([t["wall"] / f["wall"] for f, t in zip(floor, theirs, strict=False)])
            download["sha256_bound_ratio"] = round(bound, 3)
            say(
                f"download: SHA-256 alone {download['sha256_alone_mib_s']} MiB/s: no client hashing "
                f"every byte can beat {bound:.3f}x curl here"
            )
        download.update(
            goal=GOAL_DOWNLOAD,
            met=download["ratio"] is not None and download["ratio"] >= GOAL_DOWNLOAD,
            token_sent_off_canvas=counters["files_auth_headers"],
            destination=str(out),
        )

        # The ZIP, spooled once by the provider's own download, is the archive both extract.
        zip_dir = scratch_dir("canvas-bench-zip-")
        with hook.open_report_file(zip_report) as stream, open(zip_dir / "report.zip", "wb") as f:
            for chunk in stream.chunks:
                f.write(chunk)
        zip_path = zip_dir / "report.zip"
        hook.close()

    members_size = sum(info.file_size for info in zipfile.ZipFile(zip_path).infolist())
    out_zip = scratch_dir("canvas-bench-unzip-")
    provider_extract(zip_path, out_zip)  # untimed warm-up, as for the download
    _empty(out_zip)
    runs_z = side_by_side(
        rounds,
        {
            "provider": lambda: provider_extract(zip_path, out_zip),
            "unzip": (lambda: unzip_extract(zip_path, out_zip)) if unzip else None,
        },
        lambda: _empty(out_zip),
    )
    ours_z, theirs_z = runs_z["provider"], runs_z["unzip"]
    extract = summarise("unzip", members_size, ours_z, theirs_z, "unzip")
    extract.update(
        zip_bytes=zip_path.stat().st_size,
        goal=GOAL_UNZIP,
        met=extract["ratio"] is not None and extract["ratio"] >= GOAL_UNZIP,
    )
    say(f"download goal >= {GOAL_DOWNLOAD}x curl: {verdict(download['met'])}")
    say(f"unzip goal >= {GOAL_UNZIP}x unzip: {verdict(extract['met'])}")
    emit("download", smoke=args.smoke, **download)
    emit("unzip", smoke=args.smoke, **extract)


if __name__ == "__main__":
    main()
