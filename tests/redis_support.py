"""Real Redis servers, a Redis Cluster and a chaos proxy for the RedisStore tests.

Everything here listens on 127.0.0.1 only, on ports picked free at run time, and
keeps its files in a temporary directory that is removed on stop.  Nothing is
aimed at any other host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest

HOST = "127.0.0.1"

REDIS_SERVER = shutil.which("redis-server")

REDIS_CLI = shutil.which("redis-cli")


def require_redis() -> None:
    """Skip the calling test when redis-server is missing; fail instead on CI."""
    if REDIS_SERVER and REDIS_CLI:
        return

    reason = "redis-server and redis-cli are needed for the RedisStore tests"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set: install them (apt-get install redis)")

    pytest.skip(reason)


def free_port(*, with_bus: bool = False) -> int:
    """Return a free TCP port on 127.0.0.1 (and port + 10000 too with with_bus)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])

        if not with_bus:
            return port

        if port + 10000 > 65535:
            continue

        with socket.socket() as bus:
            try:
                bus.bind((HOST, port + 10000))
            except OSError:
                continue

        return port

    raise RuntimeError("no free port pair found")


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1, with start, stop, kill, pause."""

    def __init__(self, *, cluster: bool = False, port: int | None = None) -> None:
        self.cluster = cluster
        self.port = port or free_port(with_bus=cluster)
        self.dir = tempfile.mkdtemp(prefix="brama-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server (same port as before on a restart) and wait for PING."""
        assert REDIS_SERVER is not None
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--logfile",
            os.path.join(self.dir, "redis.log"),
        ]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                os.path.join(self.dir, "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
            ]

        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")

            time.sleep(0.02)

        return self

    def cli(self, *args: str) -> str:
        """Run one redis-cli command against this server and return its output."""
        assert REDIS_CLI is not None
        out = subprocess.run(
            [REDIS_CLI, "-h", HOST, "-p", str(self.port), *args],
            capture_output=True,
            check=True,
            timeout=10,
        )
        return out.stdout.decode()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.proc is not None:
            self.resume()
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        """Kill and start again on the same port, with an empty dataset."""
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterNodes:
    """Three master nodes joined into one Redis Cluster on 127.0.0.1."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(size)]

    @property
    def url(self) -> str:
        """A URL of one node, enough for a cluster client to discover the rest."""
        return self.nodes[0].url

    def start(self) -> RedisClusterNodes:
        """Start the nodes, create the cluster and wait until every slot is served."""
        for node in self.nodes:
            node.start()

        assert REDIS_CLI is not None
        addrs = [f"{HOST}:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addrs, "--cluster-yes"],
            capture_output=True,
            check=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while not all(
            "cluster_state:ok" in n.cli("cluster", "info") for n in self.nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")

            time.sleep(0.05)

        return self

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started RedisServer, stopped on exit."""
    require_redis()
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


Mode = Literal["pass", "delay", "drop_replies", "refuse", "blackhole"]


class ChaosProxy:
    """A TCP proxy between clients and one Redis server that misbehaves on demand.

    It runs its own event loop in a thread, so it keeps serving while the test's
    loop is busy and it can stand between subprocess workers and the server.

    Modes: ``pass`` forwards both ways; ``delay`` holds every chunk for
    ``delay`` seconds; ``drop_replies`` forwards commands and throws replies
    away; ``refuse`` closes new connections at once; ``blackhole`` accepts and
    reads but never forwards nor answers.  ``cut()`` closes every open link.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.connections_made = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._transports: set[asyncio.Transport] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        """The redis:// URL that goes through the proxy."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> ChaosProxy:
        """Start listening; returns once the port accepts connections."""
        self._thread.start()
        self._ready.wait(5)
        return self

    def set_mode(self, mode: Mode, delay: float = 0.0) -> None:
        """Change the behaviour for chunks and connections from now on."""
        self.delay = delay
        self.mode = mode

    def cut(self) -> None:
        """Close every open connection through the proxy."""
        fut = asyncio.run_coroutine_threadsafe(self._cut(), self._loop)
        fut.result(5)

    def stop(self) -> None:
        """Close all links and stop the thread."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        for transport in self._transports:
            transport.abort()
        self._loop.run_until_complete(asyncio.sleep(0.05))
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        transports = self._transports

        class Tracked(asyncio.StreamReaderProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                transports.add(transport)
                super().connection_made(transport)

        def factory() -> asyncio.Protocol:
            return Tracked(asyncio.StreamReader(), self._handle)

        server = await loop.create_server(factory, HOST, self.port)
        self._ready.set()
        await self._stop.wait()
        self._stopping = True
        server.close()
        await self._cut()
        for _ in range(3):
            await asyncio.sleep(0)
        current = asyncio.current_task()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            others = {t for t in asyncio.all_tasks() if t is not current}
            if not others:
                break
            await asyncio.wait(others, timeout=0.1)
        for transport in transports:
            transport.abort()
        await asyncio.sleep(0.02)
        await server.wait_closed()

    async def _cut(self) -> None:
        for writer in list(self._writers):
            writer.close()

        self._writers.clear()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        links = [writer]
        try:
            if self.mode == "refuse" or self._stopping:
                return

            self.connections_made += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    HOST, self.target_port
                )
            except OSError:
                return

            links.append(up_writer)
            upstream = up_writer.transport
            assert isinstance(upstream, asyncio.Transport)
            self._transports.add(upstream)
            self._writers.update(links)
            await asyncio.gather(
                self._pump(reader, up_writer, reply=False),
                self._pump(up_reader, writer, reply=True),
                return_exceptions=True,
            )
        finally:
            for link in links:
                link.close()
                self._writers.discard(link)
            for link in links:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await link.wait_closed()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, reply: bool
    ) -> None:
        while True:
            chunk = await src.read(65536)
            if not chunk:
                dst.close()
                return

            if self.mode == "blackhole":
                continue

            if self.mode == "drop_replies" and reply:
                continue

            if self.mode == "delay" and self.delay > 0:
                await asyncio.sleep(self.delay)

            dst.write(chunk)
            await dst.drain()


def client_count(server: RedisServer, name_prefix: str = "") -> int:
    """Client connections open on the server, less the redis-cli asking."""
    lines = [
        line
        for line in server.cli("client", "list").splitlines()
        if "cmd=client" not in line and f"name={name_prefix}" in line
    ]
    return len(lines)


WORKER_SCRIPT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "redis_worker.py"
)


class Worker:
    """A subprocess running tests/redis_worker.py, driven by JSON lines."""

    def __init__(self, config: dict[str, Any]) -> None:
        import queue

        root = os.path.dirname(os.path.dirname(WORKER_SCRIPT))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix="brama-worker-", suffix=".log"
        )
        self.proc = subprocess.Popen(
            [sys.executable, WORKER_SCRIPT, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.pid = self.recv(20)["ready"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode())

    def send(self, cmd: dict[str, Any]) -> None:
        """Send one command without waiting for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def recv(self, timeout: float = 20) -> dict[str, Any]:
        """The next answer; fails the test with the worker's log on timeout."""
        import queue

        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"worker gave no answer; log:\n{self.stderr()}"
            ) from None

        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, cmd: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        """Send a command and wait for its answer."""
        self.send(cmd)
        return self.recv(timeout)

    def stderr(self) -> str:
        """What the worker logged so far."""
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """SIGKILL the worker."""
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within 10 s."""
        if self.proc.poll() is None:
            try:
                self.ask({"op": "exit"}, timeout=10)
                self.proc.wait(10)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.kill()

        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

        self.log.close()


def ask_all(
    workers: list[Worker], cmds: list[dict[str, Any]] | dict[str, Any]
) -> list[dict[str, Any]]:
    """Send one command to each worker at once, then collect every answer."""
    if isinstance(cmds, dict):
        cmds = [cmds] * len(workers)

    for worker, cmd in zip(workers, cmds, strict=True):
        worker.send(cmd)

    return [worker.recv() for worker in workers]
