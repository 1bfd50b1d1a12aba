#!/usr/bin/env python3
"""The stand-in apache/kafka image's entrypoint: the official image turns every KAFKA_*
variable into a server property (KAFKA_NODE_ID -> node.id; `___` -> `-`, `__` -> `_`),
formats the log directory with CLUSTER_ID once, then runs the broker in the foreground
(exec, so SIGTERM from `podman stop` reaches it)."""

from __future__ import annotations

import os
from pathlib import Path

NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS",
                  "KAFKA_LOG4J_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_JMX_OPTS"}
CONFIG = Path("/opt/kafka/config/server.properties")
LOG4J = Path("/opt/kafka/config/log4j2.properties")


def property_name(variable: str) -> str:
    name = variable[len("KAFKA_"):].lower()
    return name.replace("___", "\0").replace("__", "\1").replace("_", ".") \
               .replace("\0", "-").replace("\1", "_")


def main() -> None:
    props = {property_name(k): v for k, v in os.environ.items()
             if k.startswith("KAFKA_") and k not in NOT_PROPERTIES}
    props.setdefault("log.dirs", "/tmp/kraft-combined-logs")
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    CONFIG.write_text("".join(f"{k}={v}\n" for k, v in sorted(props.items())))
    LOG4J.write_text("appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
                     "appender.stdout.layout.type = PatternLayout\n"
                     "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
                     "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n")
    java = ["java", "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={LOG4J}", "-cp", "/opt/kafka/libs/*"]
    if not (Path(props["log.dirs"].split(",")[0]) / "meta.properties").exists():
        cluster = os.environ.get("CLUSTER_ID", "5L6g3nShT-eMCtK--X86sw")
        if os.spawnvp(os.P_WAIT, "java", [*java, "kafka.tools.StorageTool", "format", "-t",
                                          cluster, "-c", str(CONFIG), "--ignore-formatted"]):
            raise SystemExit("kafka stand-in: formatting the log directory failed")
    os.execvp("java", [*java, "kafka.Kafka", str(CONFIG)])


if __name__ == "__main__":
    main()
