"""The page's look: a Gradio theme and the CSS of the app's own HTML (``hr-*`` classes).

Fonts and colours come from the theme's local defaults, so the page makes no
request outside the server it came from.
"""

from __future__ import annotations

import gradio as gr

__all__ = ["CSS", "theme"]


CSS = """
.gradio-container { max-width: 1180px !important; margin: auto; }
.hr-header { display: flex; justify-content: space-between; align-items: flex-end; gap: 16px;
  flex-wrap: wrap; padding: 18px 22px; border-radius: 14px; color: #fff;
  background: linear-gradient(120deg, #312e81, #4f46e5 55%, #0d9488); }
.hr-header h1, .hr-header p, .hr-header span, .hr-header b { color: #fff !important; }
.hr-header h1 { margin: 0; font-size: 1.7rem; }
.hr-header p { margin: 4px 0 0; opacity: .9; }
.hr-stats { display: flex; gap: 8px; flex-wrap: wrap; }
.hr-stats span { background: rgba(255,255,255,.16); border-radius: 999px; padding: 4px 12px;
  font-size: .85rem; }
.hr-results-head { display: flex; justify-content: space-between; align-items: baseline;
  margin: 4px 2px 10px; font-weight: 600; }
.hr-sub.hr-using { margin: -6px 2px 10px; text-transform: none; letter-spacing: 0; }
.hr-sub.hr-using + .hr-sub.hr-using { margin-top: -8px; }
.hr-progress { font-size: .8rem; font-weight: 500; color: var(--body-text-color-subdued); }
.hr-card { border: 1px solid var(--border-color-primary); border-radius: 12px;
  padding: 12px 14px; margin-bottom: 10px; background: var(--block-background-fill);
  box-shadow: 0 1px 2px rgba(15,23,42,.06); }
.hr-card-head { display: flex; align-items: center; gap: 10px; }
.hr-rank { flex: none; width: 28px; height: 28px; border-radius: 50%; display: grid;
  place-items: center; font-weight: 700; font-size: .85rem; color: #fff; background: #4f46e5; }
.hr-title { font-weight: 650; flex: 1; }
.hr-id { font-weight: 400; font-size: .75rem; color: var(--body-text-color-subdued); }
.hr-details { margin: 4px 0 0 38px; font-size: .8rem; color: var(--body-text-color-subdued); }
.hr-score { font-variant-numeric: tabular-nums; font-size: .85rem; padding: 2px 8px;
  border-radius: 6px; background: var(--background-fill-secondary); }
.hr-meta { margin: 6px 0 0 38px; display: flex; gap: 6px; flex-wrap: wrap;
  align-items: center; }
.hr-chip { font-size: .75rem; padding: 1px 8px; border-radius: 999px;
  background: var(--background-fill-secondary); color: var(--body-text-color-subdued); }
.hr-badge { font-size: .72rem; font-weight: 700; padding: 2px 8px; border-radius: 999px;
  text-transform: uppercase; letter-spacing: .03em; }
.hr-badge.hr-cold { background: #cffafe; color: #155e75; }
.hr-badge.hr-tail { background: #fef3c7; color: #92400e; }
.hr-fusion, .hr-driver, .hr-hist-row, .hr-mini { display: grid; align-items: center; gap: 8px;
  font-size: .8rem; }
.hr-fusion { grid-template-columns: auto 110px auto; justify-content: start;
  margin-left: auto; color: var(--body-text-color-subdued); }
.hr-drivers { margin: 8px 0 0 38px; }
.hr-driver { grid-template-columns: minmax(0, 1fr) 140px 64px; }
.hr-driver-title, .hr-hist-title, .hr-mini span:first-child { overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.hr-bar { display: block; height: 8px; border-radius: 4px; overflow: hidden;
  background: var(--background-fill-secondary); }
.hr-bar i { display: block; height: 100%; border-radius: 4px;
  background: linear-gradient(90deg, #818cf8, #4f46e5); }
.hr-bar.hr-split { background: #5eead4; }
.hr-bar.hr-split i { border-radius: 4px 0 0 4px; background: #6366f1; }
.hr-num { font-variant-numeric: tabular-nums; text-align: right;
  color: var(--body-text-color-subdued); }
.hr-sub { font-size: .72rem; text-transform: uppercase; letter-spacing: .05em;
  color: var(--body-text-color-subdued); margin: 6px 0 4px; }
.hr-expl { margin: 10px 0 0 38px; padding: 8px 12px; border-left: 3px solid #14b8a6;
  background: var(--background-fill-secondary); border-radius: 0 8px 8px 0; font-size: .9rem; }
.hr-expl-error { border-left-color: #f97316; }
.hr-pending { color: var(--body-text-color-subdued);
  animation: hr-pulse 1.2s ease-in-out infinite; }
@keyframes hr-pulse { 50% { opacity: .45; } }
.hr-backend { margin-left: 8px; font-size: .7rem; padding: 1px 6px; border-radius: 4px;
  background: var(--block-background-fill); color: var(--body-text-color-subdued);
  border: 1px solid var(--border-color-primary); }
.hr-note { margin: 6px 0 0 38px; font-size: .8rem; color: var(--body-text-color-subdued); }
.hr-history { border: 1px solid var(--border-color-primary); border-radius: 12px;
  padding: 10px 14px; background: var(--block-background-fill); }
.hr-hist-row { grid-template-columns: minmax(0, 1fr) 90px 52px; padding: 3px 0; }
.hr-hist-title small { display: block; color: var(--body-text-color-subdued); }
.hr-mini { grid-template-columns: minmax(0, 1fr) 110px 52px; padding: 3px 0; }
.hr-error { border: 1px solid #fca5a5; background: #fef2f2; color: #991b1b; border-radius: 10px;
  padding: 10px 14px; }
.hr-notice { border: 1px dashed var(--border-color-primary); border-radius: 10px;
  padding: 10px 14px; color: var(--body-text-color-subdued); }
.hr-ok { border: 1px solid #99f6e4; background: #f0fdfa; color: #134e4a; border-radius: 10px;
  padding: 10px 14px; margin-bottom: 10px; }
.hr-columns { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.hr-why p { margin: 8px 0 0 38px; font-size: .9rem; }
.hr-tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.hr-tile { border: 1px solid var(--border-color-primary); border-radius: 12px; padding: 10px 14px;
  background: var(--block-background-fill); display: flex; flex-direction: column; }
.hr-tile b { font-size: 1.4rem; }
.hr-tile span, .hr-tile small { color: var(--body-text-color-subdued); font-size: .8rem; }
.hr-tile.hr-cold { border-top: 4px solid #06b6d4; }
.hr-tile.hr-tail { border-top: 4px solid #f59e0b; }
.hr-tile.hr-head { border-top: 4px solid #6366f1; }
.hr-stack { display: flex; height: 14px; border-radius: 7px; overflow: hidden; margin: 12px 0 6px; }
.hr-stack i.hr-cold { background: #06b6d4; }
.hr-stack i.hr-tail { background: #f59e0b; }
.hr-stack i.hr-head { background: #6366f1; }
.hr-table { width: 100%; border-collapse: separate; border-spacing: 0; font-size: .82rem;
  margin-bottom: 14px; border: 1px solid var(--border-color-primary) !important;
  border-radius: 10px; overflow: hidden; }
.hr-table caption { text-align: left; font-weight: 600; padding: 4px 0 8px; }
.hr-table th, .hr-table td { padding: 6px 10px; border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important;
  text-align: right; font-variant-numeric: tabular-nums; }
.hr-table thead th { background: var(--background-fill-secondary); font-weight: 600;
  color: var(--body-text-color-subdued); }
.hr-table tbody tr:last-child > * { border-bottom: none !important; }
.hr-table tbody th { font-weight: 600; }
.hr-table th:first-child { text-align: left; }
"""


def theme() -> gr.themes.Base:
    """A clean theme with locally served fonts (no request leaves the machine)."""
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="teal", neutral_hue="slate")
