"""The scanner the "every variable is set" tests rely on: it must find each way the code
reads a variable, and nothing that is not one."""

from __future__ import annotations

import textwrap

from tests.unit.deploy import support
from tests.unit.deploy.envscan import scan_source


def _scan(src: str) -> tuple[set[str], set[str]]:
    reads = scan_source(textwrap.dedent(src))
    return set(reads.names), set(reads.patterns)


def test_finds_every_direct_form() -> None:
    names, _ = _scan("""
        import os
        from os import environ, getenv
        a = os.environ.get("A_ONE")
        b = os.environ["B_TWO"]
        c = os.getenv("C_THREE", "x")
        d = environ.get("D_FOUR")
        e = getenv("E_FIVE")
        f = settings.setting("F_SIX", "1")
        g = self.runtime.settings.setting(name="G_SEVEN", default="1")
        os.environ.setdefault("H_EIGHT", "1")
    """)
    assert names == {"A_ONE", "B_TWO", "C_THREE", "D_FOUR", "E_FIVE", "F_SIX", "G_SEVEN",
                     "H_EIGHT"}


def test_follows_wrappers_of_wrappers_to_a_fixed_point() -> None:
    names, _ = _scan("""
        import os
        def _env(name, default):
            return os.environ.get(name, default)
        def _env_int(name, default):
            return int(_env(name, default))
        def outer(key):
            return _env_int(key, 3)
        x = outer("DEEP")
        y = _env_int("MIDDLE", 1)
        def get(name, default):
            return settings.setting(name, str(default))
        z = get("LOCAL", 2)
        def __init__(self):
            setting = self.runtime.settings.setting
            lookup = os.environ.get
            again = setting
            a = setting("ALIASED", "15")
            b = lookup("ALIASED_GET")
            c = again("ALIAS_OF_ALIAS")
    """)
    assert names == {"DEEP", "MIDDLE", "LOCAL", "ALIASED", "ALIASED_GET", "ALIAS_OF_ALIAS"}


def test_ignores_what_is_not_the_process_environment() -> None:
    names, patterns = _scan("""
        import os
        a = request.environ.get("PATH_INFO")          # WSGI environ
        b = headers.get("X_HEADER")                   # any other mapping
        c = os.environ.get(name)                      # a variable, not a literal
        def f(x, name):                               # passes its 2nd parameter on
            return os.environ.get(name)
        d = f("NOT_A_READ", "y")
        e = os.environ.get("lower_case_not_a_setting")
        os.environ["WRITTEN"] = "1"                   # a write, not a read
        def __call__(self, environ, start_response):  # a WSGI environ
            if environ.get("PATH_INFO") == "/":
                return environ["SCRIPT_NAME"]
        getenv("NOT_FROM_OS")                         # some other getenv
    """)
    assert names == set() and patterns == set()


def test_keeps_built_names_as_patterns() -> None:
    _, patterns = _scan("""
        x = _env(f"{prefix}_DATABASE_URL", "d")
        def _env(name, default):
            return os.environ.get(name, default)
        y = s.setting(f"TARGET_DAYS_{p.upper()}", "7")
    """)
    assert patterns == {r"[A-Z0-9_]+_DATABASE_URL", r"TARGET_DAYS_[A-Z0-9_]+"}


def test_finds_what_the_services_read_today() -> None:
    """A canary on the real code: if the scanner silently found nothing, every "is it
    set" test would pass. These names are read by shared/config.py and gunicorn.conf.py."""
    web = support.required_env("referrals", "web")
    assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_PREFIX", "JWT_SECRET",
            "JWT_ISSUER", "JWT_AUDIENCE", "LOG_LEVEL", "OUTBOX_POLL_SECONDS", "OUTBOX_BATCH",
            "CONSUMER_MAX_ATTEMPTS", "CONSUMER_RETRY_BACKOFF_SECONDS", "KAFKA_ENABLED",
            "CLINIC_TIMEZONE", "BIND", "WEB_CONCURRENCY", "WEB_TIMEOUT",
            "PROMETHEUS_MULTIPROC_DIR"} <= web.names
    worker = support.required_env("referrals", "worker")
    assert "WORKER_METRICS_PORT" in worker.names
    assert not {"BIND", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"} & worker.names
    assert "WORKER_METRICS_PORT" not in web.names
    # {prefix}_DATABASE_URL is covered by its DATABASE_URL fallback, not asked for again
    assert not any("DATABASE_URL" in p for p in web.patterns)
    assert not support.TEST_OR_DEV_ONLY & (web.names | worker.names)


def test_missing_reports_names_and_unmatched_patterns() -> None:
    req = support.Required(frozenset({"A", "B"}), frozenset({r"[A-Z0-9_]+_URL"}))
    assert support.missing(req, {"A", "B", "NOTES_URL"}) == []
    assert support.missing(req, {"A"}) == ["B", "(a name matching [A-Z0-9_]+_URL)"]
