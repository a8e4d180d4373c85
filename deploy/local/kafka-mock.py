#!/usr/bin/python3
"""Run librdkafka's mock Kafka cluster as a local, Docker-free Kafka broker.

The mock cluster is the test broker the librdkafka project uses for its own
test suite. It speaks the real Kafka wire protocol over TCP on 127.0.0.1, so
kafkajs (and kcat, Java, Python clients) talk to it like to any broker. Data is
kept in memory only and is lost when this process stops.

Standard library only: librdkafka.so.1 (Debian package `librdkafka1`) is called
through ctypes.

Usage:
    deploy/local/kafka-mock.py [--brokers N] [--topic NAME:PARTITIONS[:RF]]...
                               [--bootstrap-file PATH] [--control-file PATH]
                               [--exit-with-parent]

The bootstrap list (e.g. 127.0.0.1:40511,127.0.0.1:39113) is printed on stdout
and, with --bootstrap-file, written atomically to PATH once every topic exists.
The process then runs until SIGTERM or SIGINT, removes the files it wrote and
exits with status 0.

Control channel (--control-file PATH): the mock cluster has no controller, so
the Kafka admin API cannot create topics (kafkajs `admin.createTopics` fails).
With --control-file the script listens on 127.0.0.1, on a port chosen by the
OS, and writes `127.0.0.1:PORT` atomically to PATH once it accepts
connections (before the bootstrap file is written, so a reader that waits for
the bootstrap file finds the control file too). Line protocol, UTF-8, one
command per line, exactly one reply line per command (`ok...` or
`error <message>`); any number of connections, each may send many commands:

    create <topic> <partitions> [<replication>]   -> ok | error <message>
        rd_kafka_mock_topic_create. <replication> defaults to
        min(brokers, 3) and must be between 1 and the broker count.
        An existing topic (created before, or auto-created on first use
        with 4 partitions) is NOT changed: librdkafka returns
        TOPIC_ALREADY_EXISTS, replied as `error TOPIC_ALREADY_EXISTS: ...`.
    broker-down <id>     -> ok | error <message>   (rd_kafka_mock_broker_set_down)
    broker-up <id>       -> ok | error <message>   (rd_kafka_mock_broker_set_up)
        Broker ids are 1..N; -1 means every broker. A down broker refuses
        and drops connections but stays partition leader (no leader change).
    ping                 -> ok
    help                 -> ok <command list>

The mock API may be called from any thread: each rd_kafka_mock_* call posts an
op to the mock cluster's own thread and waits for its reply
(rd_kafka_op_req on the cluster's op queue). Calls are serialized here anyway,
and the cluster is destroyed only after the control channel has stopped.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import re
import select
import signal
import socket
import sys
import tempfile
import threading
import time

RD_KAFKA_PRODUCER = 0
RD_KAFKA_CONF_OK = 0
PR_SET_PDEATHSIG = 1
ERRSTR_SIZE = 512
# Kafka's own rule for topic names (kafka.common.internals.Topic).
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
MAX_PARTITIONS = 10_000
MAX_LINE = 4096  # bytes per control command line
MAX_CONNECTIONS = 64
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Pause after each rd_kafka_mock_* call before the next one may start; see MockCluster.
OP_SETTLE_SECONDS = 0.005


def log(message: str) -> None:
    print(f"kafka-mock: {message}", file=sys.stderr, flush=True)


def load_librdkafka() -> ctypes.CDLL:
    candidates = ["librdkafka.so.1"]
    found = ctypes.util.find_library("rdkafka")
    if found and found not in candidates:
        candidates.append(found)
    errors = []
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    else:
        raise SystemExit(
            "kafka-mock: cannot load librdkafka ("
            + "; ".join(errors)
            + "). Install it with: apt-get install -y librdkafka1"
        )

    c_void_p, c_char_p, c_int, c_int32, c_size_t = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int32,
        ctypes.c_size_t,
    )
    signatures = {
        # const char *rd_kafka_version_str(void)
        "rd_kafka_version_str": ([], c_char_p),
        # rd_kafka_conf_t *rd_kafka_conf_new(void)
        "rd_kafka_conf_new": ([], c_void_p),
        # rd_kafka_conf_res_t rd_kafka_conf_set(conf, name, value, errstr, size)
        "rd_kafka_conf_set": ([c_void_p, c_char_p, c_char_p, c_char_p, c_size_t], c_int),
        # void rd_kafka_conf_destroy(rd_kafka_conf_t *)
        "rd_kafka_conf_destroy": ([c_void_p], None),
        # rd_kafka_t *rd_kafka_new(type, conf, errstr, errstr_size)
        "rd_kafka_new": ([c_int, c_void_p, c_char_p, c_size_t], c_void_p),
        # void rd_kafka_destroy(rd_kafka_t *)
        "rd_kafka_destroy": ([c_void_p], None),
        # const char *rd_kafka_err2str(rd_kafka_resp_err_t)
        "rd_kafka_err2str": ([c_int], c_char_p),
        # const char *rd_kafka_err2name(rd_kafka_resp_err_t)
        "rd_kafka_err2name": ([c_int], c_char_p),
        # rd_kafka_mock_cluster_t *rd_kafka_mock_cluster_new(rd_kafka_t *, int broker_cnt)
        "rd_kafka_mock_cluster_new": ([c_void_p, c_int], c_void_p),
        # void rd_kafka_mock_cluster_destroy(rd_kafka_mock_cluster_t *)
        "rd_kafka_mock_cluster_destroy": ([c_void_p], None),
        # const char *rd_kafka_mock_cluster_bootstraps(const rd_kafka_mock_cluster_t *)
        "rd_kafka_mock_cluster_bootstraps": ([c_void_p], c_char_p),
        # rd_kafka_resp_err_t rd_kafka_mock_topic_create(mcluster, topic, partition_cnt, rf)
        "rd_kafka_mock_topic_create": ([c_void_p, c_char_p, c_int, c_int], c_int),
        # rd_kafka_resp_err_t rd_kafka_mock_broker_set_down(mcluster, int32_t broker_id)
        "rd_kafka_mock_broker_set_down": ([c_void_p, c_int32], c_int),
        # rd_kafka_resp_err_t rd_kafka_mock_broker_set_up(mcluster, int32_t broker_id)
        "rd_kafka_mock_broker_set_up": ([c_void_p, c_int32], c_int),
    }
    for name, (argtypes, restype) in signatures.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise SystemExit(
                f"kafka-mock: {name} is missing from librdkafka; "
                "the mock cluster needs librdkafka >= 1.3"
            ) from None
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


def parse_topic(spec: str, brokers: int) -> tuple[str, int, int]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError(
            f"invalid --topic {spec!r}: expected NAME:PARTITIONS or NAME:PARTITIONS:RF"
        )
    try:
        partitions = int(parts[1])
        replication = int(parts[2]) if len(parts) == 3 else min(brokers, 3)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --topic {spec!r}: PARTITIONS and RF must be integers"
        ) from None
    if partitions < 1:
        raise argparse.ArgumentTypeError(f"invalid --topic {spec!r}: PARTITIONS must be >= 1")
    if not 1 <= replication <= brokers:
        raise argparse.ArgumentTypeError(
            f"invalid --topic {spec!r}: RF must be between 1 and the broker count ({brokers})"
        )
    return parts[0], partitions, replication


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kafka-mock-", dir=directory)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; the list is no secret
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_if_ours(path: str, text: str) -> None:
    """Remove a file this process wrote unless another process has replaced it."""
    try:
        with open(path) as handle:
            if handle.read().strip() != text:
                return
        os.unlink(path)
    except FileNotFoundError:
        pass


def describe_error(lib: ctypes.CDLL, err: int) -> str:
    name = lib.rd_kafka_err2name(err)
    text = lib.rd_kafka_err2str(err)
    return (
        f"{name.decode(errors='replace') if name else err}: "
        f"{text.decode(errors='replace') if text else 'unknown error'}"
    )


class MockCluster:
    """The mock cluster handle, shared by the main thread and the control channel.

    Every rd_kafka_mock_* call is made under one lock, and close() takes the
    same lock, so no call can reach a destroyed cluster.

    Each call posts an op to the mock cluster's thread and waits for the reply.
    In librdkafka 2.0.2 an op posted right after the previous reply can lose its
    wake-up (the mock thread drains its wake-up pipe after serving the queue),
    and then waits for the mock thread's 1 s poll timeout: back-to-back
    topic creations stalled 1 s every few calls here. A short pause after each
    call, still under the lock, lets the mock thread finish that iteration
    first; with it, hundreds of back-to-back calls showed no stall.
    """

    def __init__(self, lib: ctypes.CDLL, rk: int, mcluster: int, brokers: int) -> None:
        self.lib = lib
        self.brokers = brokers
        self._rk: int | None = rk
        self._mcluster: int | None = mcluster
        self._lock = threading.Lock()

    def create_topic(self, name: str, partitions: int, replication: int) -> int:
        with self._lock:
            if not self._mcluster:
                raise RuntimeError("the mock cluster is stopping")
            err = self.lib.rd_kafka_mock_topic_create(
                self._mcluster, name.encode(), partitions, replication
            )
            time.sleep(OP_SETTLE_SECONDS)
            return err

    def set_broker_up(self, broker_id: int, up: bool) -> int:
        with self._lock:
            if not self._mcluster:
                raise RuntimeError("the mock cluster is stopping")
            fn = self.lib.rd_kafka_mock_broker_set_up if up else self.lib.rd_kafka_mock_broker_set_down
            err = fn(self._mcluster, broker_id)
            time.sleep(OP_SETTLE_SECONDS)
            return err

    def bootstraps(self) -> str:
        with self._lock:
            return self.lib.rd_kafka_mock_cluster_bootstraps(self._mcluster).decode()

    def close(self) -> None:
        with self._lock:
            mcluster, rk = self._mcluster, self._rk
            self._mcluster = self._rk = None
        if mcluster:
            self.lib.rd_kafka_mock_cluster_destroy(mcluster)
        if rk:
            self.lib.rd_kafka_destroy(rk)


class CommandError(Exception):
    """A control command failed; the message becomes the `error ...` reply."""


def parse_int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise CommandError(f"{what} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise CommandError(f"{what} must be between {low} and {high}, got {value}")
    return value


class ControlServer:
    """Line-oriented control channel on 127.0.0.1 (see the module docstring)."""

    def __init__(self, cluster: MockCluster) -> None:
        self.cluster = cluster
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(socket.SOMAXCONN)
        self._listener.setblocking(False)
        host, port = self._listener.getsockname()[:2]
        self.address = f"{host}:{port}"
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="control-accept", daemon=True
        )

    def start(self) -> None:
        self._accept_thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._accept_thread.is_alive():
            self._accept_thread.join(timeout)
        with self._lock:
            connections = list(self._connections.items())
        for conn, _ in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
            except OSError:
                pass
        for _, thread in connections:
            thread.join(timeout)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([self._listener, self._wake_r], [], [])
            except OSError as exc:
                log(f"control: select failed: {exc}")
                return
            if self._wake_r in readable or self._stopping.is_set():
                return
            try:
                conn, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log(f"control: accept failed: {exc}")
                self._stopping.wait(0.1)
                continue
            conn.setblocking(True)
            with self._lock:
                if len(self._connections) >= MAX_CONNECTIONS:
                    busy = True
                else:
                    busy = False
                    thread = threading.Thread(
                        target=self._serve,
                        args=(conn, f"{peer[0]}:{peer[1]}"),
                        name=f"control-{peer[1]}",
                        daemon=True,
                    )
                    self._connections[conn] = thread
            if busy:
                self._send(conn, f"error too many connections (at most {MAX_CONNECTIONS})")
                conn.close()
                continue
            thread.start()

    @staticmethod
    def _send(conn: socket.socket, reply: str) -> bool:
        # One reply line, whatever the message contains.
        line = " ".join(reply.splitlines()) + "\n"
        try:
            conn.sendall(line.encode("utf-8", errors="replace"))
            return True
        except OSError:
            return False

    def _serve(self, conn: socket.socket, peer: str) -> None:
        try:
            with conn.makefile("rb") as reader:
                while not self._stopping.is_set():
                    try:
                        raw = reader.readline(MAX_LINE + 1)
                    except OSError:
                        break
                    if not raw:
                        break
                    if len(raw) > MAX_LINE:
                        self._send(conn, f"error line longer than {MAX_LINE} bytes; closing")
                        break
                    reply = self.execute(raw, peer)
                    if not self._send(conn, reply):
                        break
        except Exception as exc:  # never let one connection take the process down
            log(f"control: connection {peer} failed: {exc!r}")
        finally:
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()

    def execute(self, raw: bytes, peer: str = "-") -> str:
        try:
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise CommandError("command is not valid UTF-8") from None
            if self._stopping.is_set():
                raise CommandError("the mock cluster is stopping")
            reply = self._dispatch(line.split())
        except CommandError as exc:
            reply = f"error {exc}"
        except Exception as exc:  # a bug here must not kill the connection thread
            reply = f"error internal error: {exc!r}"
        log(f"control {peer}: {raw.decode('utf-8', errors='replace').strip()[:200]!r} -> {reply}")
        return reply

    def _dispatch(self, words: list[str]) -> str:
        if not words:
            raise CommandError("empty command (try: help)")
        command, args = words[0].lower(), words[1:]
        brokers = self.cluster.brokers
        if command == "ping":
            return "ok"
        if command == "help":
            return (
                "ok commands: create <topic> <partitions> [<replication>]; "
                "broker-down <id>; broker-up <id> (id -1: every broker); ping; help"
            )
        if command == "create":
            if len(args) not in (2, 3):
                raise CommandError("usage: create <topic> <partitions> [<replication>]")
            topic = args[0]
            if not TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
                raise CommandError(
                    f"invalid topic name {topic!r}: 1 to 249 characters of [A-Za-z0-9._-]"
                )
            partitions = parse_int(args[1], "partitions", 1, MAX_PARTITIONS)
            replication = (
                parse_int(args[2], "replication", 1, brokers) if len(args) == 3 else min(brokers, 3)
            )
            err = self._call(self.cluster.create_topic, topic, partitions, replication)
            if err:
                raise CommandError(describe_error(self.cluster.lib, err))
            log(f"created topic {topic}: {partitions} partitions, replication factor {replication}")
            return "ok"
        if command in ("broker-down", "broker-up"):
            if len(args) != 1:
                raise CommandError(f"usage: {command} <id>  (1..{brokers}, or -1 for every broker)")
            broker_id = parse_int(args[0], "broker id", INT32_MIN, INT32_MAX)
            err = self._call(self.cluster.set_broker_up, broker_id, command == "broker-up")
            if err:
                raise CommandError(f"broker {broker_id}: {describe_error(self.cluster.lib, err)}")
            return "ok"
        raise CommandError(f"unknown command {command!r} (try: help)")

    @staticmethod
    def _call(fn, *args) -> int:
        try:
            return fn(*args)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None


def exit_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
    except (OSError, AttributeError) as exc:
        log(f"--exit-with-parent is not supported here: {exc}")
        return
    if os.getppid() == 1:  # the parent already exited before prctl
        raise SystemExit("kafka-mock: parent process already exited")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run librdkafka's mock Kafka cluster (real Kafka protocol on 127.0.0.1)."
    )
    parser.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME:PARTITIONS[:RF]",
        help="pre-create a topic (repeatable); RF defaults to min(brokers, 3)",
    )
    parser.add_argument(
        "--bootstrap-file",
        metavar="PATH",
        help="write the bootstrap list to PATH (atomically) once the cluster is ready",
    )
    parser.add_argument(
        "--control-file",
        metavar="PATH",
        help="serve the control channel (create topics, broker down/up) on 127.0.0.1 "
        "and write its address HOST:PORT to PATH (atomically) once it is ready",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process exits (Linux), even if it is killed",
    )
    args = parser.parse_args()
    if args.brokers < 1:
        parser.error("--brokers must be >= 1")
    if (
        args.control_file
        and args.bootstrap_file
        and os.path.abspath(args.control_file) == os.path.abspath(args.bootstrap_file)
    ):
        parser.error("--control-file and --bootstrap-file must be different files")
    try:
        topics = [parse_topic(spec, args.brokers) for spec in args.topic]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))

    if args.exit_with_parent:
        exit_with_parent()

    # Block the stop signals before librdkafka starts its threads (and before
    # the control channel starts its own): threads inherit the mask, so the
    # signals are delivered to sigwait() below only.
    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    lib = load_librdkafka()
    errstr = ctypes.create_string_buffer(ERRSTR_SIZE)

    conf = lib.rd_kafka_conf_new()
    # The handle only hosts the mock cluster; it never connects anywhere.
    for key, value in (("log_level", "3"), ("client.id", "tributary-kafka-mock")):
        if lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), errstr, ERRSTR_SIZE) != RD_KAFKA_CONF_OK:
            log(f"ignoring config {key}={value}: {errstr.value.decode(errors='replace')}")
    rk = lib.rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, ERRSTR_SIZE)
    if not rk:
        lib.rd_kafka_conf_destroy(conf)
        log(f"rd_kafka_new failed: {errstr.value.decode(errors='replace')}")
        return 1
    # rd_kafka_new took ownership of conf.

    mcluster = lib.rd_kafka_mock_cluster_new(rk, args.brokers)
    if not mcluster:
        lib.rd_kafka_destroy(rk)
        log("rd_kafka_mock_cluster_new failed")
        return 1
    cluster = MockCluster(lib, rk, mcluster, args.brokers)

    control: ControlServer | None = None
    written: list[tuple[str, str]] = []  # (path, text) of the files to remove on exit
    try:
        for name, partitions, replication in topics:
            err = cluster.create_topic(name, partitions, replication)
            if err != 0:
                log(
                    f"cannot create topic {name} ({partitions} partitions, rf {replication}): "
                    f"{describe_error(lib, err)}"
                )
                return 1
            log(f"created topic {name}: {partitions} partitions, replication factor {replication}")

        bootstraps = cluster.bootstraps()
        version = lib.rd_kafka_version_str().decode()
        log(f"librdkafka {version} mock cluster with {args.brokers} broker(s) at {bootstraps}")
        if args.control_file:
            control = ControlServer(cluster)
            control.start()
            write_atomically(args.control_file, control.address)
            written.append((args.control_file, control.address))
            log(f"control channel on {control.address} (written to {args.control_file})")
        if args.bootstrap_file:
            write_atomically(args.bootstrap_file, bootstraps)
            written.append((args.bootstrap_file, bootstraps))
        print(bootstraps, flush=True)

        received = signal.sigwait(stop_signals)
        log(f"received {signal.Signals(received).name}, stopping")
        return 0
    finally:
        for path, text in reversed(written):
            remove_if_ours(path, text)
        if control is not None:
            control.close()
        cluster.close()

if __name__ == "__main__":
    sys.exit(main())
