"""The Ray half of tests/test_distributed.py (a helper, not a test module).

Run as ``python tests/ray_job.py WORKDIR`` inside a loopback-only network
namespace (the test wraps it in ``unshare -n``): it refuses to start unless
``lo`` is the only interface, starts one local Ray cluster (2 CPUs) for every
job, reads its inputs from WORKDIR and writes the Ray backend's outputs there
(``*.npy``, ``*.parquet``, stores, ``result.json``) for the test process to
compare with the local backend.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def listening_sockets() -> list[str]:
    """Local addresses of every listening TCP socket in this namespace (``ss -Htln``)."""
    if shutil.which("ss") is None:
        return []
    out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


def run(work: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from hybrid_rec.config import ContentConfig
    from hybrid_rec.content import HashingEncoder
    from hybrid_rec.distributed import (
        BackendOptions,
        ray_embed,
        ray_reembed_catalog,
        ray_score_cold_items,
        ray_session,
    )
    from hybrid_rec.errors import HybridRecError

    spec = importlib.util.spec_from_file_location(
        "reembed_script", ROOT / "scripts/reembed_catalog.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    result: dict[str, Any] = {}
    texts = json.loads((work / "texts.json").read_text())
    temp = tempfile.mkdtemp(prefix="ray_test_", dir="/tmp")
    opts = BackendOptions(num_cpus=2, temp_dir=temp, show_progress=False)
    seconds = result["seconds"] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    try:
        with ray_session(opts):
            lap("ray.init")
            result["listening"] = listening_sockets()
            # two actors of one CPU: blocks come back from both, out of order
            two = dataclasses.replace(opts, num_workers=2, cpus_per_worker=1)
            vectors = ray_embed(texts, functools.partial(HashingEncoder, 64), two)
            np.save(work / "hashing.npy", vectors)
            lap("embed hashing")
            new_items = pd.read_parquet(work / "new_items.parquet")
            scores = ray_score_cold_items(work / "model", new_items, k=20, options=two)
            scores.to_parquet(work / "scores.parquet", index=False)
            lap("score")
            from typer.testing import CliRunner

            from hybrid_rec.cli import app

            argv = [str(work / "new_items.parquet"), "--model-dir", str(work / "model")]
            argv += ["--out", str(work / "scores_cli.parquet"), "-k", "20", "--backend", "ray"]
            cli = CliRunner().invoke(app, ["score-cold", *argv, "--no-progress"])
            result["cli_rc"], result["cli_out"] = cli.exit_code, cli.output + repr(cli.exception)
            lap("score-cold cli")
            store_cfg = ContentConfig(encoder="hashing", hashing_dim=32, shard_size=10)
            summaries = [
                ray_reembed_catalog(
                    work / name, work / "store", config=store_cfg, options=opts, round_size=13
                )
                for name in ("items_v1.parquet", "items_v2.parquet")
            ]
            result["summaries"] = [dataclasses.asdict(s) for s in summaries]
            lap("reembed x2")
            argv = [str(work / "items_v2.parquet"), "--store", str(work / "store_script")]
            argv += ["--encoder", "hashing", "--shard-size", "10", "--backend", "ray", "-q"]
            result["script_rc"] = script.main(argv)
            lap("script")
            try:
                ray_embed(texts[:4], "no-such-encoder", opts)
            except HybridRecError as exc:
                result["worker_error"] = [type(exc).__name__, str(exc)]
            lap("error")
            np.save(work / "minilm.npy", ray_embed(texts, "minilm", opts))
            lap("embed minilm")
        lap("ray.shutdown")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return result


def main(argv: list[str]) -> int:
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        print(f"refusing to start Ray: interfaces {interfaces}, expected only lo", file=sys.stderr)
        return 3
    work = Path(argv[0])
    (work / "result.json").write_text(json.dumps(run(work)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
