"""A private Kafka broker for the fault suite, through the project's own script.

The fault suite stops and restarts its broker; it must never do that to a broker others
use. So it runs its own: its own cache and data folder, its own ports, the jars shared
with the main cache by a symlink (nothing is downloaded twice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.infra import ROOT
from tests.support.processes import free_port


def _jars() -> Path:
    for candidate in (Path(os.environ.get("KAFKA_CACHE", "")) / "lib",
                      ROOT / ".cache/kafka/lib"):
        if (candidate / ".complete").exists():
            return candidate
    subprocess.run([ROOT / "scripts/kafka.sh", "fetch"], check=True)
    return ROOT / ".cache/kafka/lib"


@dataclass
class PrivateBroker:
    cache: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"KAFKA_CACHE": str(self.cache), "KAFKA_DATA": str(self.cache / "data"),
                "KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}

    def _script(self, action: str) -> None:
        subprocess.run([ROOT / "scripts/kafka.sh", action], check=True,
                       env={**os.environ, **self.env()}, capture_output=True)

    def start(self) -> PrivateBroker:
        self.cache.mkdir(parents=True, exist_ok=True)
        lib = self.cache / "lib"
        if not lib.exists():
            lib.symlink_to(_jars(), target_is_directory=True)
        self._script("start")
        return self

    def stop(self) -> None:
        self._script("stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.cache, ignore_errors=True)


def private_broker(base: Path) -> PrivateBroker:
    return PrivateBroker(base, free_port(), free_port()).start()
