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
                               [--bootstrap-file PATH] [--exit-with-parent]

The bootstrap list (e.g. 127.0.0.1:40511,127.0.0.1:39113) is printed on stdout
and, with --bootstrap-file, written atomically to PATH once every topic exists.
The process then runs until SIGTERM or SIGINT, removes the bootstrap file it
wrote and exits with status 0.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import sys
import tempfile

RD_KAFKA_PRODUCER = 0
RD_KAFKA_CONF_OK = 0
PR_SET_PDEATHSIG = 1
ERRSTR_SIZE = 512


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

    c_void_p, c_char_p, c_int, c_size_t = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
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
        # rd_kafka_mock_cluster_t *rd_kafka_mock_cluster_new(rd_kafka_t *, int broker_cnt)
        "rd_kafka_mock_cluster_new": ([c_void_p, c_int], c_void_p),
        # void rd_kafka_mock_cluster_destroy(rd_kafka_mock_cluster_t *)
        "rd_kafka_mock_cluster_destroy": ([c_void_p], None),
        # const char *rd_kafka_mock_cluster_bootstraps(const rd_kafka_mock_cluster_t *)
        "rd_kafka_mock_cluster_bootstraps": ([c_void_p], c_char_p),
        # rd_kafka_resp_err_t rd_kafka_mock_topic_create(mcluster, topic, partition_cnt, rf)
        "rd_kafka_mock_topic_create": ([c_void_p, c_char_p, c_int, c_int], c_int),
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
    """Remove the bootstrap file unless another process has replaced it."""
    try:
        with open(path) as handle:
            if handle.read().strip() != text:
                return
        os.unlink(path)
    except FileNotFoundError:
        pass


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
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process exits (Linux), even if it is killed",
    )
    args = parser.parse_args()
    if args.brokers < 1:
        parser.error("--brokers must be >= 1")
    try:
        topics = [parse_topic(spec, args.brokers) for spec in args.topic]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))

    if args.exit_with_parent:
        exit_with_parent()

    # Block the stop signals before librdkafka starts its threads: the threads
    # inherit the mask, so the signals are delivered to sigwait() below only.
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

    wrote_file = False
    try:
        for name, partitions, replication in topics:
            err = lib.rd_kafka_mock_topic_create(mcluster, name.encode(), partitions, replication)
            if err != 0:
                log(
                    f"cannot create topic {name} ({partitions} partitions, rf {replication}): "
                    f"{lib.rd_kafka_err2str(err).decode(errors='replace')}"
                )
                return 1
            log(f"created topic {name}: {partitions} partitions, replication factor {replication}")

        bootstraps = lib.rd_kafka_mock_cluster_bootstraps(mcluster).decode()
        version = lib.rd_kafka_version_str().decode()
        log(f"librdkafka {version} mock cluster with {args.brokers} broker(s) at {bootstraps}")
        if args.bootstrap_file:
            write_atomically(args.bootstrap_file, bootstraps)
            wrote_file = True
        print(bootstraps, flush=True)

        received = signal.sigwait(stop_signals)
        log(f"received {signal.Signals(received).name}, stopping")
        return 0
    finally:
        if wrote_file:
            remove_if_ours(args.bootstrap_file, bootstraps)
        lib.rd_kafka_mock_cluster_destroy(mcluster)
        lib.rd_kafka_destroy(rk)


if __name__ == "__main__":
    sys.exit(main())
