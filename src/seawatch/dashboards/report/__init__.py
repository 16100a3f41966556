"""The self-contained HTML cruise report (``seawatch report``): data loaders, figures, page."""

from seawatch.dashboards.report.data import ReportData, from_local_store
from seawatch.dashboards.report.data_influx import from_influx
from seawatch.dashboards.report.html import render

__all__ = ["ReportData", "from_influx", "from_local_store", "render"]
