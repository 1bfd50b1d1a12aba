"""Starting and reaching the real infrastructure the tests use: Kafka and PostgreSQL,
through the project's own scripts."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
# The same variables the scripts read, so a second copy of the project (a CI dry run on
# this machine) can use its own broker and server beside a running one.
KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PG_PORT = os.environ.get("PG_PORT", "5433")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/postgres"


def ensure_kafka() -> str:
    if subprocess.run([ROOT / "scripts/kafka.sh", "status"], capture_output=True).returncode:
        subprocess.run([ROOT / "scripts/kafka.sh", "start"], check=True)
    return KAFKA_BOOTSTRAP


def restart_kafka() -> None:
    subprocess.run([ROOT / "scripts/kafka.sh", "restart"], check=True)


def stop_kafka() -> None:
    subprocess.run([ROOT / "scripts/kafka.sh", "stop"], check=True)


def start_kafka() -> None:
    subprocess.run([ROOT / "scripts/kafka.sh", "start"], check=True)


def ensure_postgres() -> None:
    if subprocess.run([ROOT / "scripts/postgres.sh", "status"], capture_output=True).returncode:
        subprocess.run([ROOT / "scripts/postgres.sh", "start"], check=True)


def create_pg_database() -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name


def drop_pg_database(name: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def pg_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/{name}"


def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(prefix)]
        if doomed:
            admin.delete_topics(doomed)
    except Exception:
        pass
    finally:
        admin.close()
