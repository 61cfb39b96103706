"""Running the Java side of the tests (tests/java, built by tests/run.sh).

Each Maven module under tests/java copies its runtime classpath to
`<module>/target/lib`; `classpath(module)` joins that with the module's own
classes. Modules pin different kafka-clients versions, so every Java process
gets exactly one module's classpath.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

try:
    import pytest
except ImportError:  # used outside pytest too (kafka_ref.py from bench/run.sh)
    pytest = None

JAVA_ROOT = Path(__file__).resolve().parents[1] / "java"


def java_bin():
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        _fail("java not found (tests/run.sh expects Java 17 and Maven)")
    return found


def module_dir(module):
    d = JAVA_ROOT / module
    lib = d / "target" / "lib"
    if not lib.is_dir():
        _fail(
            f"{lib} missing: build the Java side first "
            f"(mvn -q -f {JAVA_ROOT / 'pom.xml'} package, done by tests/run.sh)",
            )
    return d


def classpath(module):
    d = module_dir(module)
    parts = []
    if (d / "target" / "classes").is_dir():
        parts.append(str(d / "target" / "classes"))
    parts.append(str(d / "target" / "lib" / "*"))
    return os.pathsep.join(parts)


def run_java(module, main_class, args=(), timeout=120, check=True, jvm_args=(), input=None, env=None):
    """Run `main_class` from `module` to completion; returns CompletedProcess
    (text mode). A non-zero exit fails the test with the process's output
    when check=True."""
    cmd = [java_bin(), "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           *jvm_args, "-cp", classpath(module), main_class, *map(str, args)]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=full_env)
    except subprocess.TimeoutExpired as e:
        _fail(
            f"{main_class} {' '.join(map(str, args))} timed out after {timeout}s\n"
            f"--- stdout\n{_tail(e.stdout)}\n--- stderr\n{_tail(e.stderr)}",
            )
    if check and cp.returncode != 0:
        _fail(
            f"{main_class} {' '.join(map(str, args))} exited {cp.returncode}\n"
            f"--- stdout\n{_tail(cp.stdout)}\n--- stderr\n{_tail(cp.stderr)}",
            )
    return cp


def json_lines(text):
    """The JSON objects a driver printed, one per line (other lines ignored)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            out.append(json.loads(line))
    return out


def _tail(s, n=60):
    if s is None:
        return ""
    if isinstance(s, bytes):
        s = s.decode(errors="replace")
    return "\n".join(s.splitlines()[-n:])


def _fail(msg):
    if pytest is not None:
        pytest.fail(msg, pytrace=False)
    raise RuntimeError(msg)
