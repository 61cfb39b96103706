"""Shared fixtures and helpers for the Shardline integration tests.

Every test talks to a real `shardline serve` process on 127.0.0.1 using real
Kafka clients (confluent-kafka / librdkafka, kafka-python, kafkajs, kcat).

Environment:
  SHARDLINE_BIN   path of the broker binary (default: <repo>/target/release/shardline)
  SHARDLINE_ARGS  extra arguments appended to `shardline serve` (split on whitespace)
  SHARDLINE_KEEP_LOGS=1  keep broker data dirs/logs of passing tests too (tests/run.sh
                  otherwise has pytest delete the tmp dirs of passing tests)
  SHARDLINE_TEST_WAL_BYTES  write-ahead ring size of test brokers (default 16 MiB;
                  see TEST_WAL_BYTES)
"""

import os
import resource
import shlex
import signal
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "release" / "shardline"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 80
# Test brokers get a 16 MiB write-ahead ring per shard unless a test asks for
# another size: the ring is reserved with fallocate, and hundreds of brokers
# with the 128 MiB default (two shards each) filled CI's disk. A small ring
# also wraps and checkpoints far more often, and rounds over half of it take
# the fdatasync path: both are exercised by every test.
TEST_WAL_BYTES = os.environ.get("SHARDLINE_TEST_WAL_BYTES", str(16 << 20))

# Brokers that are currently alive (or at least not yet closed); their log
# tails are attached to the report of any failing test.
_LIVE_BROKERS = []


# --------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------

def pytest_configure(config):
    # kafka-python 3 uses deprecated importlib.resources calls at import time.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:kafka.*")
    config.addinivalue_line("filterwarnings", "ignore:.*is deprecated. Use files\\(\\) instead.*:DeprecationWarning")


def pytest_collection_modifyitems(config, items):
    # Give every test a hard timeout even when run without --timeout.
    try:
        has_cli_timeout = config.getoption("timeout") is not None
    except ValueError:  # pytest-timeout not installed
        return
    if not has_cli_timeout:
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(300))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for broker in list(_LIVE_BROKERS):
            rep.sections.append(
                (f"shardline log tail ({broker.name}, {broker.log_path})", broker.log_tail())
            )


# --------------------------------------------------------------------------
# Broker process management
# --------------------------------------------------------------------------

def free_port():
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _raise_memlock():
    # Glommio wants locked memory; lift the limit in the child when we can
    # (root can raise the hard limit, others can at least raise soft to hard).
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
        except (ValueError, OSError):
            pass


def broker_binary():
    path = Path(os.environ.get("SHARDLINE_BIN", str(DEFAULT_BIN)))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"shardline binary not found or not executable at {path}; "
            "run `cargo build --release` or set SHARDLINE_BIN",
            pytrace=False,
        )
    return path


class Broker:
    """One `shardline serve` process; can be stopped, killed and restarted on
    the same port and data dir."""

    def __init__(self, binary, data_dir, log_path, port=None, extra_args=(), name="broker"):
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.extra_args = list(extra_args) + shlex.split(os.environ.get("SHARDLINE_ARGS", ""))
        if not any(a.startswith("--log-wal-bytes") for a in self.extra_args):
            self.extra_args += ["--log-wal-bytes", TEST_WAL_BYTES]
        self.name = name
        # RLIMIT_NOFILE (soft and hard) to start the broker with, or None.
        self.nofile_limit = None
        self.proc = None
        self.starts = 0
        self.last_returncode = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._logf = None

    # -- properties ------------------------------------------------------
    @property
    def bootstrap(self):
        return f"{HOST}:{self.port}"

    @property
    def address(self):
        return (HOST, self.port)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        return [
            str(self.binary), "serve",
            "--listen", self.bootstrap,
            "--data-dir", str(self.data_dir),
            *self.extra_args,
        ]

    # -- lifecycle -------------------------------------------------------
    def preexec(self):
        """Runs in the child before exec: resource limits (subclasses add theirs)."""
        _raise_memlock()
        if self.nofile_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile_limit, self.nofile_limit))

    def start(self, timeout=START_TIMEOUT_S):
        assert not self.is_running(), "broker already running"
        self.starts += 1
        if self._logf is None:
            self._logf = open(self.log_path, "ab", buffering=0)
        cmd = self.command()
        self._logf.write(f"\n===== [harness] start #{self.starts}: {shlex.join(cmd)}\n".encode())
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self.preexec,
        )
        if self not in _LIVE_BROKERS:
            _LIVE_BROKERS.append(self)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.last_returncode = rc
                raise RuntimeError(
                    f"shardline exited with code {rc} during startup\n--- log tail ---\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(self.address, timeout=0.5):
                    return
            except OSError as e:
                last_err = e
                time.sleep(0.1)
        raise RuntimeError(
            f"shardline did not accept connections on {self.bootstrap} within {timeout}s "
            f"(last error: {last_err})\n--- log tail ---\n{self.log_tail()}"
        )

    def terminate(self, grace=STOP_GRACE_S):
        """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit code
        (negative = killed by signal)."""
        if self.proc is None:
            return self.last_returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._note(f"did not exit {grace}s after SIGTERM; sending SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.last_returncode = self.proc.returncode
        self._note(f"exited with code {self.last_returncode}")
        self.proc = None
        return self.last_returncode

    def kill9(self):
        """Simulate a crash: SIGKILL, no chance to flush or clean up."""
        assert self.is_running(), "broker is not running"
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.last_returncode = self.proc.returncode
        self._note(f"killed with SIGKILL (rc={self.last_returncode})")
        self.proc = None

    def restart(self, timeout=START_TIMEOUT_S):
        """Start again on the same port and data dir (after kill9/terminate)."""
        if self.is_running():
            self.terminate()
        return self.start(timeout)

    def close(self):
        try:
            self.terminate()
        finally:
            if self in _LIVE_BROKERS:
                _LIVE_BROKERS.remove(self)
            if self._logf is not None:
                self._logf.close()
                self._logf = None

    # -- logs ------------------------------------------------------------
    def _note(self, msg):
        if self._logf is not None:
            self._logf.write(f"===== [harness] {msg}\n".encode())

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=LOG_TAIL_LINES):
        return "\n".join(self.log_text().splitlines()[-lines:])


class ConfigBroker(Broker):
    """A broker started from a TOML config file: subclasses set
    `self.config_path` and write it in their __init__ (listeners, security)."""

    def command(self):
        return [str(self.binary), "serve", "--config", str(self.config_path),
                "--data-dir", str(self.data_dir), *self.extra_args]


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def shardline_bin():
    return broker_binary()


@contextmanager
def running(b):
    """Start a broker object (Broker, TlsBroker, AclBroker, ...), yield it and
    close it however the block ends: the body of every broker fixture."""
    try:
        b.start()
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def broker(shardline_bin, tmp_path_factory, request):
    """A broker shared by all tests of one module (use unique topic names)."""
    base = tmp_path_factory.mktemp(f"broker-{request.module.__name__}")
    with running(Broker(shardline_bin, base / "data", base / "broker.log",
                        name=request.module.__name__)) as b:
        yield b


@pytest.fixture(scope="module")
def bootstrap(broker):
    return broker.bootstrap


@pytest.fixture
def broker_factory(shardline_bin, tmp_path):
    """Function-scoped factory for private brokers (crash/restart tests).

    make(**kwargs) -> started Broker; kwargs: extra_args, port, data_dir."""
    made = []

    def make(extra_args=(), port=None, data_dir=None, start=True):
        i = len(made)
        b = Broker(
            shardline_bin,
            data_dir or (tmp_path / f"data{i}"),
            tmp_path / f"broker{i}.log",
            port=port,
            extra_args=extra_args,
            name=f"private-{i}",
        )
        made.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture(scope="session")
def kafka_ref(tmp_path_factory):
    """Apache Kafka 4.x (KRaft, one combined node) as the reference broker,
    shared by the whole session; see kafka_ref.py."""
    from kafka_ref import KafkaReference
    k = KafkaReference(tmp_path_factory.mktemp("apache-kafka"))
    try:
        k.start()
        yield k
    finally:
        k.stop()


# --------------------------------------------------------------------------
# Client helpers (confluent-kafka)
# --------------------------------------------------------------------------

def unique_topic(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def admin_client(bootstrap, **extra):
    from confluent_kafka.admin import AdminClient
    conf = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    conf.update(extra)
    return AdminClient(conf)


def create_topic(bootstrap, topic, partitions=1, config=None, timeout=30):
    from confluent_kafka.admin import NewTopic
    admin = admin_client(bootstrap)
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=timeout,
    )
    fs[topic].result(timeout=timeout)  # raises KafkaException on error
    wait_for_topic(bootstrap, topic, partitions, timeout=timeout)


def wait_for_topic(bootstrap, topic, partitions=None, timeout=30):
    """Wait until Metadata (all topics, so no auto-create) shows the topic with
    a leader for every partition."""
    admin = admin_client(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            last = {p: (pm.leader, pm.error) for p, pm in t.partitions.items()}
            if (partitions is None or len(t.partitions) == partitions) and all(
                pm.leader >= 0 and pm.error is None for pm in t.partitions.values()
            ):
                return md
        else:
            last = t.error if t is not None else "absent"
        time.sleep(0.2)
    raise AssertionError(f"topic {topic} not ready (want {partitions} partitions) after {timeout}s: {last}")


def produce(bootstrap, topic, messages, conf=None, timeout=30):
    """Produce `messages` (dicts with value/key/headers/partition/timestamp)
    with confluent-kafka and return one delivery record per message, in
    message order: dict(error, partition, offset, timestamp)."""
    from confluent_kafka import Producer
    pconf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": int(timeout * 1000),
        "socket.timeout.ms": 10000,
    }
    pconf.update(conf or {})
    p = Producer(pconf)
    results = [None] * len(messages)

    def cb_for(i):
        def cb(err, msg):
            results[i] = {
                "error": err,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": msg.timestamp(),
            }
        return cb

    for i, m in enumerate(messages):
        kwargs = {"value": m.get("value"), "on_delivery": cb_for(i)}
        for k in ("key", "headers", "partition", "timestamp"):
            if m.get(k) is not None:
                kwargs[k] = m[k]
        produce_waiting(p, topic, **kwargs)
        p.poll(0)
    remaining = p.flush(timeout + 5)
    assert remaining == 0, f"{remaining} messages still undelivered after flush"
    assert all(r is not None for r in results), "missing delivery reports"
    return results


def produce_waiting(p, topic, **kwargs):
    """confluent-kafka `produce`, waiting (serving delivery callbacks) while
    the client's local queue is full instead of failing with BufferError."""
    while True:
        try:
            return p.produce(topic, **kwargs)
        except BufferError:
            p.poll(0.05)


def assert_delivered(results):
    errors = [(i, r["error"]) for i, r in enumerate(results) if r["error"] is not None]
    assert not errors, f"delivery errors (first 5): {errors[:5]}"


def consumer_conf(bootstrap, **extra):
    # confluent-kafka insists on a group.id even for assign(); we never
    # subscribe or commit, so no group coordination is used for fetching.
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"shardline-test-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "error",
        "socket.timeout.ms": 10000,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return conf


def consume(bootstrap, topic, partition=0, start=0, expect=None, timeout=30, drain_s=1.0, conf=None):
    """Consume via assign() from `start` until `expect` messages arrived (or,
    when expect is None, until the high watermark is reached). After reaching
    the target, keeps polling `drain_s` to catch surplus/duplicate messages.
    Returns a list of confluent_kafka.Message."""
    from confluent_kafka import Consumer, TopicPartition
    errors = []
    c = Consumer(consumer_conf(bootstrap, error_cb=lambda e: errors.append(e), **(conf or {})))
    out = []
    try:
        if expect is None:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
            expect = max(0, hi - start)
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    errors.append(m.error())
                    continue
                out.append(m)
        drain_end = time.monotonic() + drain_s
        while time.monotonic() < drain_end:
            for m in c.consume(num_messages=500, timeout=0.2):
                if m.error():
                    errors.append(m.error())
                else:
                    out.append(m)
    finally:
        c.close()
    if len(out) < expect:
        raise AssertionError(
            f"consumed {len(out)}/{expect} messages from {topic}[{partition}] starting at {start} "
            f"within {timeout}s; client errors: {errors[:5]}"
        )
    return out


def watermarks(bootstrap, topic, partition=0):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(consumer_conf(bootstrap))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def headers_of(msg):
    """Message headers as a list of (str, bytes) ([] when none)."""
    return [(k, v) for k, v in (msg.headers() or [])]


def poll_until(consumers, cond, timeout=30, sink=None):
    """Poll confluent consumers in turn until `cond()` holds (True) or
    `timeout` passes (False); messages go to `sink` as (consumer, message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            if m is not None and not m.error() and sink is not None:
                sink.append((c, m))
        if cond():
            return True
    return False
