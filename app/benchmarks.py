"""The catalogue-insight tab's files: ``quality.json``, ``RESULTS.md`` and the recall plot.

``scripts/evaluate.py`` (``make bench``) writes them under ``benchmarks/``;
each is optional, and a missing or broken one gives a notice, not an error.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from app.render import escape, render_notice

__all__ = ["read_benchmarks", "render_quality"]

log = logging.getLogger(__name__)


def read_benchmarks(directory: Path) -> tuple[str, Any, str]:
    """Quality table HTML, the recall-by-decile plot (PIL image) and RESULTS.md, if present.

    Each part is optional: a missing or unreadable file gives a notice instead.
    """
    quality_file, results_file = directory / "quality.json", directory / "RESULTS.md"
    if quality_file.is_file():
        try:
            quality = render_notice(
                "These figures come from the benchmark script (`make bench`: models trained "
                "to convergence on a cold-start split), not from the model this app serves."
            ) + render_quality(json.loads(quality_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            quality = render_notice(f"{quality_file} could not be read ({exc}).")
    else:
        quality = render_notice(
            f"No benchmark results in {directory}/ yet: `make bench` writes quality.json, "
            "RESULTS.md and the recall-by-decile plot."
        )
    markdown = ""
    if results_file.is_file():
        text = results_file.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
        markdown = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text).strip()
    return quality, _plot(directory), markdown


def _plot(directory: Path) -> Any:
    plots = sorted(directory.glob("recall_by_decile*.png"), key=lambda p: p.stat().st_mtime)
    if not plots:
        return None
    preferred = [p for p in plots if p.stem.endswith("ml-100k")]
    try:
        from PIL import Image

        with Image.open((preferred or plots)[-1]) as img:
            return img.convert("RGB")
    except OSError as exc:
        log.warning("cannot read %s: %s", plots[-1], exc)
        return None


def render_quality(data: dict[str, Any]) -> str:
    """quality.json as one table per dataset: recall/NDCG for cold, warm, all; coverage; tail."""
    if not isinstance(data, dict) or not data:
        return render_notice("quality.json holds no results.")
    settings = ("cold", "warm", "all")
    tables = []
    for key, entry in data.items():
        meta, methods = entry.get("meta", {}), entry.get("methods", {})
        k = escape(str(meta.get("k", 20)))
        head = "".join(f"<th>{s} R@{k}</th><th>{s} N@{k}</th>" for s in settings)
        rows = []
        for name, res in methods.items():
            cells = "".join(
                f"<td>{_fmt(res.get(s, {}).get(m))}</td>"
                for s in settings
                for m in (f"recall@{k}", f"ndcg@{k}")
            )
            extra = res.get("all", {})
            rows.append(
                f"<tr><th>{escape(name)}</th>{cells}<td>{_fmt(extra.get('coverage'), 3)}</td>"
                f"<td>{_fmt(extra.get('long_tail_share'), 3)}</td></tr>"
            )
        caption = f"{key} · encoder {meta.get('encoder', '?')} · {meta.get('date', '')}"
        tables.append(
            f'<table class="hr-table"><caption>{escape(caption)}</caption>'
            "<thead><tr><th>method</th>"
            f"{head}<th>coverage</th><th>tail share</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(tables)


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.{digits}f}"
