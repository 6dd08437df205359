"""The report as one self-contained HTML file: plotly.js, the data and the script inline.

Why plotly: it is maintained, its Python package ships the whole plotly.js bundle (so the page
needs no network and nothing but PyPI to build), and one library gives every view the report
needs — log axes, hover text, click events to select a model, grouped bars and annotated
heat-maps — driven from a few lines of our own script. The cost is size: about 4.8 MB of
JavaScript in every report (Vega-Lite would be smaller but needs a second package, vl-convert,
to inline its scripts, and its selections are harder to link to plain HTML views).
"""

from __future__ import annotations

import html
import json
from typing import Any

from rdcompress.report.assets import CSS, JS

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<script>{plotly}</script>
</head><body>
<h1>{title}</h1>
<p class="note">{subtitle}</p>

<h2>1. Rate–distortion plane</h2>
<p class="controls"><label>x: <select id="x-axis"><option value="file_ratio">file ratio</option>
<option value="bits_per_weight">bits per weight</option></select></label>
<label>y: <select id="y-axis"><option value="accuracy">accuracy</option>
<option value="kl">KL to the original</option><option value="cross_entropy">cross-entropy
</option><option value="agreement">agreement</option></select></label>
<span class="note">Click a point (or a row below) to select a model; shift-click a second one
to compare. Lines: each method's Pareto front; dotted: the original.</span></p>
<div id="rd"></div>
<h3>Every model</h3>
<div class="scroll" id="models"></div>

<h2>2. One model in detail: <span id="detail-title"></span></h2>
<p class="controls"><label>compare with: <select id="compare"></select></label></p>
<p id="detail-info"></p>
<div id="layers"></div><div id="layer-bars"></div>

<h2>3. Where it disagrees with the original</h2>
<p class="note" id="disagree-note"></p>
<div class="two"><div><h3>Original vs compressed predictions</h3><div id="confusion"></div>
</div><div><h3>Accuracy change per class</h3><div id="per-class"></div></div></div>
<h3>Test inputs whose prediction changed (highest KL first)</h3>
<div id="gallery"></div>

<h2>4. Provenance</h2>
{provenance}

<script type="application/json" id="report-data">{data}</script>
<script>{js}</script>
</body></html>
"""


def render(document: dict[str, Any], plotly_js: str) -> str:
    """The HTML page of a report ``document`` (build.build_document) with ``plotly_js``."""
    title = html.escape(document["title"])
    return TEMPLATE.format(
        title=title, subtitle=html.escape(document["subtitle"]), css=CSS, plotly=plotly_js,
        provenance=provenance_html(document), data=script_json(document), js=JS)


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a <script> element: every "<" (which could
    start "</script>" or "<!--") written as its \\u003c escape, which JSON.parse reads back."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def provenance_html(document: dict[str, Any]) -> str:
    """Static HTML: how the report and each sweep were made, and every file's sha256."""
    e = html.escape
    build = document["build"]
    parts = [f"<p>Report: <code>{e(build['command'])}</code> at {e(build['created'])}; "
             + ", ".join(f"{e(k)} {e(str(v))}" for k, v in build["versions"].items()) + ".</p>"]
    for index, sweep in enumerate(document["sweeps"]):
        model, config, ref = sweep.get("model", {}), sweep.get("config", {}), sweep["reference"]
        match = sweep.get("weights_match")
        check = ("" if match is None else " — the original opened now has this hash"
                 if match else " — <b class='warn'>the original opened now has another "
                 "hash: it changed since the sweep</b>")
        parts.append(
            f"<h3>Sweep {e(sweep['label'])}</h3><p>Directory <code>{e(sweep['path'])}</code>, "
            f"written by rdcompress {e(str(sweep.get('rdcompress')))}. Original "
            f"<code>{e(str(model.get('source')))}</code> (spec <code>"
            f"{e(json.dumps(model.get('spec')))}</code>), weights sha256 <span class='hash'>"
            f"{e(str(model.get('weights_sha256')))}</span>{check}.<br>Data: "
            f"{e(str(model.get('dataset')))}, split {e(str(config.get('eval_split')))}, "
            f"{e(str(ref.get('num_samples')))} samples (eval_limit "
            f"{e(str(config.get('eval_limit')))}); seed {e(str(config.get('seed')))}; "
            f"importance temperature {e(str(config.get('temperature')))}, "
            f"{e(str(config.get('calibration_samples')))} calibration samples; coder "
            f"{e(str(config.get('coder')))}.<br>Original: accuracy "
            f"{_num(ref.get('accuracy'))}, cross-entropy {_num(ref.get('cross_entropy'))}."
            f"</p><p>Equivalent settings (sweep.json <code>config</code>; re-run with "
            f"<code>rdcompress sweep</code> into the same directory to resume):</p>"
            f"<pre>{e(json.dumps(config, indent=1))}</pre>")
        files = [m for m in document["models"] if m["sweep"] == index]
        rows = "".join(
            f"<tr><td class='l'>{e(m['file'])}</td><td>{m['file_bytes']}</td>"
            f"<td class='l hash'>{e(m.get('sha256') or m.get('missing') or '')}</td></tr>"
            for m in files)
        parts.append(f"<details><summary>{len(files)} files and their sha256</summary><div "
                     f"class='scroll'><table><tr><th class='l'>file</th><th>bytes</th>"
                     f"<th class='l'>sha256</th></tr>{rows}</table></div></details>")
    return "\n".join(parts)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "–"
