"""volantd's Prometheus metrics (``GET /metrics``): what a daemon counts and what it reads at scrape time.

:mod:`~volant_core.metrics.tally` and :mod:`~volant_core.metrics.cache_hits` are the counting the
rest of the core does without importing ``prometheus_client``;
:mod:`~volant_core.metrics.daemon_metrics` turns them, the store and the event bus into one
registry per daemon (docs/adr/0039-metrics-and-cli-startup.md).
"""
