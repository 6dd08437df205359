"""The HTML report: compare compressed models in a browser (``rdcompress report``).

``collect`` reads finished sweeps (``sweep.json`` and the ``.rdz`` files), ``disagree`` runs the
models to see where they disagree with their original, ``page`` renders one self-contained HTML
file (plotly.js, data and script inline) and ``build`` ties them together.
"""

from rdcompress.report.build import ReportConfig, ReportResult, build_document, build_report

__all__ = ["ReportConfig", "ReportResult", "build_document", "build_report"]
