"""OpenTelemetry set-up: one trace per turn, per-turn metrics as histograms.

The exporter is chosen by config: "none" (default; spans are still created so
in-process readers and tests can see them), "console", or "otlp" (endpoint
from the standard OTEL_EXPORTER_OTLP_ENDPOINT variable).
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

log = logging.getLogger(__name__)
_configured = False


def configure(exporter: str = "none", extra_span_processor: SpanProcessor | None = None,
              extra_metric_reader: MetricReader | None = None) -> None:
    """Install global tracer and meter providers once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    resource = Resource.create({"service.name": "peromesh"})
    tracer_provider = TracerProvider(resource=resource)
    readers: list[MetricReader] = [extra_metric_reader] if extra_metric_reader else []
    if exporter == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), 60_000))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(), 15_000))
    elif exporter != "none":
        raise ValueError(f"unknown telemetry exporter {exporter!r} (none, console, otlp)")
    if extra_span_processor:
        tracer_provider.add_span_processor(extra_span_processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    log.debug("telemetry exporter: %s", exporter)


class CorrelationFilter(logging.Filter):
    """Puts `corr` (session#turn, or '-') on every record so formats can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "corr"):
            record.corr = "-"
        return True
