"""Logger and Metrics, created once for every handler (Powertools reads the service name, the
metrics namespace and the log level from POWERTOOLS_* variables set by infra/).

No Tracer: importing it (and the X-Ray SDK) costs about half a second of cold start.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from taskflow.metric_names import MetricName

__all__ = ["MetricName", "count", "logger", "metrics"]

logger = Logger()
metrics = Metrics()

# An invocation that records no metric (a GET, an acked duplicate) is normal here, not a mistake.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def count(name: MetricName, value: int = 1) -> None:
    """Add `value` to a count metric (flushed by the handler's @metrics.log_metrics)."""
    if value:
        metrics.add_metric(name=name.value, unit=MetricUnit.Count, value=value)
