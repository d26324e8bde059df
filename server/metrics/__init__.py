"""`/metrics` in Prometheus format: the app's counters and histograms (`registry.py`), the
per-PDV gauges read at scrape time (`pdvs.py`), the route and who may read it (`route.py`),
and the timing of push and pull requests (`timing.py`). `install.py` wires them into an app;
`settings.py` (METRICS_*) stays importable without prometheus_client."""
