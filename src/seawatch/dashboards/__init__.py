"""Grafana dashboards, datasource and alert rules as code; provisioning; the HTML report."""
