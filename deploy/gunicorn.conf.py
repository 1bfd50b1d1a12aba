"""gunicorn settings for every PainCare web role (one file, here and in the containers)."""

import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("WEB_THREADS", "2"))
# gthread, but gunicorn's own refusals (414, 431, a malformed request line or header)
# answer application/problem+json like the app does (limits below are gunicorn's defaults)
worker_class = "shared.gunicorn_workers.ProblemThreadWorker"
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
accesslog = None  # the app logs each request as JSON, with its ids
# gunicorn's control socket (gunicornc) would live under $HOME/.gunicorn: the image's
# home is read-only and nobody drives gunicorn that way here, so it is off (otherwise an
# error on every start)
control_socket_disable = True
errorlog = "-"


def child_exit(_server, worker):  # type: ignore[no-untyped-def]
    """Prometheus multiprocess mode: forget a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
