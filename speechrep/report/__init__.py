"""Static HTML report of a pipeline run: results table, plots, audio players."""

from speechrep.report.html import ReportInputs, build_report

__all__ = ["ReportInputs", "build_report"]
