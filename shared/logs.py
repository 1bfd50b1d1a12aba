"""JSON logs, one line per record, carrying the request and correlation ids.

Patient data never goes in a log line: log ids, never note bodies or names.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from shared import correlation


class _Ids(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation.correlation_id()
        record.request_id = correlation.request_id()
        return True


def configure(service: str, level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_paincare_service", None) == service:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
    ))
    handler.addFilter(_Ids())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # marks the root logger as set up for this service: configure() again is a no-op
    root._paincare_service = service  # type: ignore[attr-defined]
    logging.getLogger("kafka").setLevel(logging.WARNING)
