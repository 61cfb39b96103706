"""Apache Kafka 4.x as the reference broker (KRaft, combined broker+controller
on 127.0.0.1), started from the jars that tests/java/kafka-dist resolves from
Maven Central.

In tests:   the `kafka_ref` session fixture (conftest.py) -> KafkaReference
From a shell (bench/run.sh --against kafka):
    .venv/bin/python tests/integration/kafka_ref.py --port 19092 --dir /tmp/k [--heap 1g] [KEY=VALUE ...]
    (runs in the foreground until SIGTERM/SIGINT)
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from java import classpath, java_bin  # noqa: E402

HOST = "127.0.0.1"
# Fixed cluster id: the data dir is always fresh, and a stable id makes logs comparable.
CLUSTER_ID = "c2hhcmRsaW5lLXJlZg"

LOG4J2 = """Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: STDOUT}]}
    Logger:
      - {name: kafka.request.logger, level: WARN}
      - {name: org.apache.kafka.controller, level: WARN}
"""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class KafkaReference:
    """One Apache Kafka process. `extra` = server.properties lines (KEY=VALUE)
    appended after the defaults, so they override them."""

    def __init__(self, data_dir, port=None, controller_port=None, extra=(), heap="1g",
                 node_id=1, voters=None, internal_rf=1):
        """`voters` (`id@host:port,...`) makes this node one of a quorum of
        several (all started with `launch`, then `wait_ready`); internal
        topics then get `internal_rf` replicas."""
        self.node_id = node_id
        self.voters = voters
        self.internal_rf = internal_rf
        self.dir = Path(data_dir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.extra = list(extra)
        self.heap = heap
        self.proc = None
        self.log_path = self.dir / "kafka.log"
        self._logf = None

    @property
    def bootstrap(self):
        return f"{HOST}:{self.port}"

    def properties(self):
        lines = [
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={self.voters or f'1@{HOST}:{self.controller_port}'}",
            f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.dir / 'logs'}",
            "num.partitions=1",
            f"offsets.topic.replication.factor={self.internal_rf}",
            "offsets.topic.num.partitions=1",
            f"transaction.state.log.replication.factor={self.internal_rf}",
            "transaction.state.log.min.isr=1",
            f"share.coordinator.state.topic.replication.factor={self.internal_rf}",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
        ]
        return "\n".join(lines + self.extra) + "\n"

    def command(self):
        # The JVM settings of Kafka's operations guide ("Java Version"), with
        # the heap as given (the guide's 6g for a production broker is what
        # bench/run.sh uses; tests use 1g, as kafka-server-start.sh does).
        return [java_bin(), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:MetaspaceSize=96m",
                "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:G1HeapRegionSize=16M", "-XX:MinMetaspaceFreeRatio=50", "-XX:MaxMetaspaceFreeRatio=80",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
                "-cp", classpath("kafka-dist"), "kafka.Kafka", str(self.dir / "server.properties")]

    def start(self, timeout=60):
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60):
        self._wait_ready(timeout)

    def launch(self):
        """Start without waiting (a quorum's nodes wait for each other)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "server.properties").write_text(self.properties())
        (self.dir / "log4j2.yaml").write_text(LOG4J2)
        if not (self.dir / "logs" / "meta.properties").exists():
            fmt = subprocess.run(
                [java_bin(), "-cp", classpath("kafka-dist"), "kafka.tools.StorageTool", "format",
                 "-t", CLUSTER_ID, "-c", str(self.dir / "server.properties")],
                capture_output=True, text=True, timeout=120)
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
        self._logf = open(self.log_path, "ab")
        # A restart appends: readiness is what this start writes.
        self._log_from = self.log_path.stat().st_size
        self.proc = subprocess.Popen(self.command(), stdout=self._logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Apache Kafka exited with {self.proc.returncode}:\n{self.log_tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_from", 0))
                started = b"Kafka Server started" in f.read()
            if started:
                return
            time.sleep(0.2)
        raise RuntimeError(f"Apache Kafka not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._logf:
            self._logf.close()
            self._logf = None

    close = stop


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=19092)
    ap.add_argument("--controller-port", type=int, default=None)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--heap", default="1g")
    ap.add_argument("props", nargs="*", help="extra server.properties lines KEY=VALUE")
    a = ap.parse_args()
    k = KafkaReference(a.dir, port=a.port, controller_port=a.controller_port or a.port + 1,
                       extra=a.props, heap=a.heap)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    k.start()
    print(f"Apache Kafka ready on {k.bootstrap} (pid {k.proc.pid}, log {k.log_path})", flush=True)
    try:
        while not stop and k.proc.poll() is None:
            time.sleep(0.2)
    finally:
        k.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
