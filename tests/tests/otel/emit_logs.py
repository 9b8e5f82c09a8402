"""Emits log records through the OpenTelemetry Python SDK's OTLP/HTTP exporter
(protobuf, gzip), for tests/tests/aggregator_otlp.rs.

Usage: emit_logs.py ENDPOINT TOKEN RUN COUNT

Record i has the body "line-RUN-i step i", a severity cycling through DEBUG, INFO,
WARN, ERROR and FATAL, attributes (seq, order.id, ok, ratio, tags) and the trace
context of the span it was emitted in (a new span every 10 records). For each record
one JSON line goes to stdout: its id, trace_id, span_id and severity text, for the test
to compare with what the aggregator wrote. Exits non-zero if the export did not finish
or the SDK warned of anything (a failed export, a record dropped from its queue).
"""

import json
import logging
import sys
import time

from opentelemetry import context, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

SEVERITIES = [
    (SeverityNumber.DEBUG, "DEBUG"),
    (SeverityNumber.INFO, "INFO"),
    (SeverityNumber.WARN, "WARN"),
    (SeverityNumber.ERROR, "ERROR"),
    (SeverityNumber.FATAL, "FATAL"),
]


class Warnings(logging.Handler):
    """Keeps every warning the SDK logs: it reports failed exports and dropped records
    only that way, and carries on. A transient error it is retrying is not kept: if the
    retries fail, it says so with a warning of its own."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "retrying in" not in message:
            self.messages.append("%s: %s" % (record.name, message))


def main():
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    endpoint, token, run, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    resource = Resource.create(
        {
            "service.name": "checkout",
            "host.name": "py-host-1",
            "k8s.namespace.name": "shop",
            "k8s.pod.name": "checkout-5f7",
            "k8s.container.name": "app",
            "deployment.environment": "test",
        }
    )
    exporter = OTLPLogExporter(
        endpoint=endpoint,
        headers={"Authorization": "Bearer " + token},
        compression=Compression.Gzip,
        timeout=30,
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(
        # A queue for every record: the SDK drops records from a full queue (by default
        # 2048) when the exports fall behind the loop below, as on a busy machine.
        BatchLogRecordProcessor(
            exporter,
            max_export_batch_size=256,
            schedule_delay_millis=50,
            max_queue_size=max(count, 256),
        )
    )
    logger = provider.get_logger("logferry.e2e", "1.0")
    tracer = TracerProvider(resource=resource).get_tracer("logferry.e2e")
    span = None
    for i in range(count):
        if i % 10 == 0:
            if span is not None:
                span.end()
            span = tracer.start_span("step-%d" % (i // 10))
        ctx = trace.set_span_in_context(span, context.get_current())
        number, text = SEVERITIES[i % len(SEVERITIES)]
        record_id = "line-%s-%d" % (run, i)
        logger.emit(
            timestamp=time.time_ns(),
            context=ctx,
            severity_number=number,
            severity_text=text,
            body="%s step %d" % (record_id, i),
            attributes={
                "seq": i,
                "order.id": "o-%d" % (i % 7),
                "ok": i % 2 == 0,
                "ratio": i / 4,
                "tags": ["a", "b"],
            },
        )
        sc = span.get_span_context()
        print(
            json.dumps(
                {
                    "id": record_id,
                    "trace_id": format(sc.trace_id, "032x"),
                    "span_id": format(sc.span_id, "016x"),
                    "severity": text,
                }
            )
        )
    span.end()
    flushed = provider.force_flush(60_000)
    provider.shutdown()
    for message in warnings.messages:
        print("SDK warning: " + message, file=sys.stderr)
    sys.exit(0 if flushed and not warnings.messages else 1)


if __name__ == "__main__":
    main()
