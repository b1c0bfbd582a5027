"""The simulator processes of a run, supervised.

mosaik starts a ``cmd`` simulator as a child process and talks to it over TCP. On its own it waits forever
for an answer from a child that died between two requests, and reports a child that died during a request
only as a broken connection. Each child a run starts here goes through :class:`Supervisor`:

* it is started as ``python -m scenarios.child`` (:mod:`scenarios.child`), so it dies with the run's
  process whatever ends that process, and ignores Ctrl-C;
* its stderr passes through to ours and its last lines are kept (the simulator's last words);
* a watcher notices when it exits while the run goes on and fails every request waiting on it, and every
  later one, with :class:`SimulatorFailed` naming the simulator, its exit code or signal and its last words;
* a request it does not answer within ``step_timeout_s`` fails the same way (a hung simulator);
* at the end it is asked to stop, then terminated, then killed: no child outlives the run.

A simulator someone started elsewhere (``run.connect``: ``python -m <module> HOST:PORT --remote``, e.g. on
another host) is reached through :meth:`Supervisor.connector` (tried again while it refuses: it may still
be starting) and watched alike, as far as a connection allows: one that cannot be reached within
``start_timeout``, closes or loses its connection while the run goes on (its process ended or was
killed), raises, or does not answer a request within ``step_timeout_s`` (a hung simulator, or a host that
went away without a word) fails the run naming it and its address. At the end it is asked to stop (it
then ends on its host); it is not ours to kill.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from mosaik.proxies import BaseProxy, RemoteProxy
from mosaik.starters import Starter
from mosaik_api_v3.connection import Channel, EndOfRequests, RemoteException

logger = logging.getLogger(__name__)

TAIL_LINES = 20
TERMINATE_WAIT_S = 5.0
STOP_GRACE_S = 30.0
CONNECT_RETRY_S = 0.25


class SimulatorFailed(RuntimeError):
    """A simulator process died, hung or stopped answering; the message names it and its last words."""


@dataclass
class Child:
    """One simulator process of a run."""

    name: str
    target: str
    address: str | None = None
    """HOST:PORT of a simulator started elsewhere (``run.connect``); None for a process of the run's."""
    lost: str | None = None
    """How the connection to a simulator started elsewhere ended."""
    pid: int | None = None
    returncode: int | None = None
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    died: bool = False
    """It ended while the run went on (not when the run stopped it)."""
    hung: bool = False
    """It did not answer a request in time (it is terminated without being asked to stop)."""
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))

    def where(self) -> str:
        return f"{self.target} at {self.address}" if self.address is not None else f"{self.target}, pid {self.pid}"

    def exit_text(self) -> str:
        if self.address is not None:
            return self.lost or "is connected"
        rc = self.returncode
        if rc is None:
            return "is running"
        if rc < 0:
            try:
                return f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"was killed by signal {-rc}"
        return f"exited with code {rc}"

    def last_words(self) -> str:
        lines = [line for line in self.tail if line.strip()]
        return " | ".join(lines[-5:]) if lines else "(nothing on stderr)"


async def _quietly(request: Any) -> None:
    """Await ``request``; whatever it raises (a closed connection, a child gone) is no error here."""
    with contextlib.suppress(Exception):
        await request


async def _terminate(process: asyncio.subprocess.Process) -> None:
    """Terminate, wait, kill: a child never outlives the run."""
    if process.returncode is not None:
        return
    try:
        process.terminate()
        await asyncio.wait_for(process.wait(), TERMINATE_WAIT_S)
    except ProcessLookupError:
        return
    except TimeoutError:
        logger.warning("simulator process %s ignored SIGTERM for %.0f s: killed", process.pid, TERMINATE_WAIT_S)
        process.kill()
        await process.wait()


class _SupervisorsStarter(Starter):
    """A starter made by a :class:`Supervisor` for one of its children (never from a sim_config dict)."""

    api_version = None  # what mosaik asks of every starter: the simulator's own META says it

    def __init__(self, supervisor: Supervisor, child: Child) -> None:
        self._supervisor = supervisor
        self._child = child

    @classmethod
    def from_starter_config(cls, starter_config: Any) -> None:
        return None  # built by Supervisor.starter / connector


class _SupervisedStarter(_SupervisorsStarter):
    """Starts one simulator process and hands it to its supervisor from the first byte it writes."""

    async def start(self, sim_id: str, mosaik_remote: Any, mosaik_config: Any) -> BaseProxy:
        child, supervisor = self._child, self._supervisor
        connected: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not connected.done():
                connected.set_result(Channel(reader, writer, name=sim_id))

        server = await asyncio.start_server(on_connect, *mosaik_config["addr"])
        try:
            host, port = server.sockets[0].getsockname()[:2]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scenarios.child", "--parent", str(os.getpid()), child.target, f"{host}:{port}",
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            child.pid = process.pid
            supervisor.relay(child, process)
            exited: asyncio.Future[int] = asyncio.ensure_future(process.wait())
            waiting: set[asyncio.Future[Any]] = {connected, exited}
            done, _ = await asyncio.wait(
                waiting, timeout=mosaik_config["start_timeout"], return_when=asyncio.FIRST_COMPLETED
            )
            if connected not in done:
                exited.cancel()
                if exited in done:
                    child.returncode, child.died = process.returncode, True
                    await asyncio.sleep(0.2)  # the relay reads the last lines
                    raise supervisor.failure(child, f"{child.exit_text()} before it connected")
                await _terminate(process)
                raise supervisor.failure(child, f"did not connect within {mosaik_config['start_timeout']:g} s")
            exited.cancel()
        finally:
            server.close()
        channel = connected.result()
        proxy = RemoteProxy(channel, mosaik_remote, process=(process, _terminate))
        supervisor.watch(child, process, channel)
        return proxy


class _ConnectStarter(_SupervisorsStarter):
    """Connects to a simulator started elsewhere and hands it to its supervisor."""

    async def start(self, sim_id: str, mosaik_remote: Any, mosaik_config: Any) -> BaseProxy:
        child, supervisor = self._child, self._supervisor
        try:
            reader, writer = await self._open(mosaik_config["start_timeout"])
        except (OSError, TimeoutError) as exc:
            why = (
                f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {mosaik_config['start_timeout']:g} s"
            )
            module = child.target.partition(":")[0]
            raise supervisor.failure(
                child, f"cannot be reached ({why}); start it there: python -m {module} {child.address} --remote"
            ) from None
        channel = Channel(reader, writer, name=sim_id)
        proxy = RemoteProxy(channel, mosaik_remote)
        supervisor.watch_connection(child, channel)
        return proxy

    async def _open(self, timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection, tried again while it is refused (the simulator may still be starting: it
        listens once imported) until ``timeout_s`` is over."""
        assert self._child.address is not None
        host, _, port = self._child.address.rpartition(":")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), max(deadline - loop.time(), 0.01)
                )
            except ConnectionRefusedError:
                if loop.time() + CONNECT_RETRY_S >= deadline:
                    raise
                await asyncio.sleep(CONNECT_RETRY_S)


class Supervisor:
    """Starts a run's simulator processes and watches them (see the module docstring)."""

    def __init__(self, step_timeout_s: float) -> None:
        if not step_timeout_s > 0:
            raise ValueError(f"step_timeout_s must be > 0, got {step_timeout_s!r}")
        self.step_timeout_s = float(step_timeout_s)
        self.children: list[Child] = []
        self.stopping = False
        self.raised: list[SimulatorFailed] = []
        """Exceptions that simulators raised in a request (mosaik swallows them)."""
        self._tasks: list[asyncio.Task[None]] = []

    def starter(self, name: str, target: str) -> Starter:
        """A mosaik starter for the simulator ``target`` (``package.module:Class``) in its own process."""
        child = Child(name, target)
        self.children.append(child)
        return _SupervisedStarter(self, child)

    def connector(self, name: str, target: str, address: str) -> Starter:
        """A mosaik starter that connects to the simulator ``target`` someone started at ``address``
        (``HOST:PORT``) with ``python -m <module> HOST:PORT --remote``."""
        child = Child(name, target, address=address)
        self.children.append(child)
        return _ConnectStarter(self, child)

    def relay(self, child: Child, process: asyncio.subprocess.Process) -> None:
        """Pass the child's stderr through to ours and keep its last lines."""
        if process.stderr is not None:
            task = self._relay_stderr(child, process.stderr)
            self._tasks.append(asyncio.get_running_loop().create_task(task, name=f"supervise {child.name} stderr"))

    def watch(self, child: Child, process: asyncio.subprocess.Process, channel: Channel) -> None:
        """From the connection on: notice the child's end, and bound every request's wait."""
        child.process, child.channel = process, channel
        task = self._await_exit(child, process, channel)
        self._tasks.append(asyncio.get_running_loop().create_task(task, name=f"supervise {child.name} exit"))
        self._guard_requests(child, channel)

    def watch_connection(self, child: Child, channel: Channel) -> None:
        """From the connection on, a simulator started elsewhere: notice when the connection ends, and
        bound every request's wait."""
        child.channel = channel
        task = self._await_disconnect(child, channel)
        self._tasks.append(asyncio.get_running_loop().create_task(task, name=f"supervise {child.name} connection"))
        self._guard_requests(child, channel)

    def failure(self, child: Child, what: str) -> SimulatorFailed:
        if child.address is not None:  # its stderr is on its own host
            return SimulatorFailed(f"simulator {child.name} ({child.where()}) {what}")
        return SimulatorFailed(f"simulator {child.name} ({child.where()}) {what}; its last words: {child.last_words()}")

    def first_failure(self) -> SimulatorFailed | None:
        """What went wrong with a child while the run went on: an exception it raised, or its end."""
        if self.raised:
            return self.raised[0]
        dead = self.dead_child()
        return None if dead is None else self.failure(dead, dead.exit_text())

    def dead_child(self) -> Child | None:
        """The first child that ended while the run went on."""
        return next((c for c in self.children if c.died), None)

    def explain(self, exc: BaseException) -> BaseException:
        """``exc`` as what a child did where one raised or died (a broken connection says less)."""
        known = None if isinstance(exc, SimulatorFailed) else self.first_failure()
        return exc if known is None else known

    async def stop_watching(self) -> None:
        """Before the world shuts its simulators down: their ends are no failures."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def stop_children(self, grace_s: float = STOP_GRACE_S) -> None:
        """Ask each child to stop (it finalizes: the recorder writes its last rows), wait up to ``grace_s``
        for it to end, then terminate it; ask each simulator started elsewhere to stop, and close its
        connection. mosaik's own stop waits 0.1 s and then may wait forever on a child that is still busy;
        after this, every channel is closed."""
        await asyncio.gather(
            *(self._stop_child(c, grace_s) for c in self.children if c.process is not None),
            *(self._stop_connected(c, grace_s) for c in self.children if c.address is not None and c.channel),
        )

    async def _stop_connected(self, child: Child, grace_s: float) -> None:
        channel = child.channel
        assert channel is not None
        reader: asyncio.Task[None] = channel._receiver_task
        if not reader.done() and not child.hung:
            # it may end without an answer: its end of the connection closes, which ends the reader
            asked = asyncio.ensure_future(_quietly(channel.send(["stop", [], {}])))
            await asyncio.wait({asked, reader}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            await asyncio.wait({reader}, timeout=TERMINATE_WAIT_S)
        if not reader.done():
            channel._writer.close()  # a hung one learns of the end when it next reads
        child.lost = child.lost or "was stopped"
        # as for a child: mosaik's stop waits for its request handler, which ends only on EndOfRequests
        channel._incoming_requests.put_nowait(EndOfRequests())

    async def _stop_child(self, child: Child, grace_s: float) -> None:
        process, channel = child.process, child.channel
        assert process is not None
        if process.returncode is None and channel is not None and not child.hung:
            # the stop request and the child's exit race: a child that exits without answering (it was
            # interrupted too, e.g. by the same Ctrl-C) ends the wait at once, not after the grace period
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace_s
            exited = asyncio.ensure_future(process.wait())
            asked = asyncio.ensure_future(_quietly(channel.send(["stop", [], {}])))
            await asyncio.wait({exited, asked}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await asyncio.wait({exited}, timeout=max(deadline - loop.time(), 0.1))
            for task in (exited, asked):
                task.cancel()
        await _terminate(process)
        child.returncode = process.returncode
        if channel is not None:
            # mosaik's stop of this simulator later waits for its request handler, which ends only on
            # EndOfRequests: the channel's reader queues it on EOF, unless the reader was cancelled
            # first. Queue one more (harmless if the handler is gone).
            channel._incoming_requests.put_nowait(EndOfRequests())

    def kill_all(self) -> None:
        """Last resort after a failed shutdown: SIGKILL every child still running."""
        for child in self.children:
            if child.pid is not None and child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ inside the world's event loop
    async def _relay_stderr(self, child: Child, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", errors="replace").rstrip("\n")
            child.tail.append(text)
            print(f"[{child.name}] {text}", file=sys.stderr)

    async def _await_exit(self, child: Child, process: asyncio.subprocess.Process, channel: Any) -> None:
        child.returncode = await process.wait()
        if self.stopping:
            return
        child.died = True
        await asyncio.sleep(0.2)  # let the relay read the last lines
        error = self.failure(child, child.exit_text())
        logger.error("%s", error)
        for future in list(channel._outgoing_request_futures.values()):
            if not future.done():
                future.set_exception(error)

    async def _await_disconnect(self, child: Child, channel: Channel) -> None:
        reader: asyncio.Task[None] = channel._receiver_task
        await asyncio.wait({reader})  # (not ``await reader``: cancelling this watch must not cancel it)
        problem = None if reader.cancelled() else reader.exception()
        if self.stopping:
            return
        if problem is None:
            child.lost = "closed its connection (its process ended, or was killed, on its host)"
        else:
            child.lost = f"lost its connection ({type(problem).__name__}: {problem})"
        child.died = True
        error = self.failure(child, child.exit_text())
        logger.error("%s", error)
        for future in list(channel._outgoing_request_futures.values()):
            if not future.done():
                future.set_exception(error)

    def _guard_requests(self, child: Child, channel: Any) -> None:
        send = channel.send
        supervisor = self

        async def guarded_send(request: Any) -> Any:
            if child.died and not supervisor.stopping:
                raise supervisor.failure(child, child.exit_text())
            method = request[0] if isinstance(request, (list, tuple)) and request else "?"
            if method == "stop" or supervisor.stopping:
                return await send(request)
            try:
                return await asyncio.wait_for(send(request), supervisor.step_timeout_s)
            except RemoteException as exc:  # mosaik logs it and ends the run as if it were complete
                supervisor.raised.append(supervisor.failure(child, f"raised {exc.remote_type}: {exc.remote_msg}"))
                raise
            except TimeoutError:
                child.hung = True
                raise supervisor.failure(
                    child, f"did not answer {method!r} within run.step_timeout_s = {supervisor.step_timeout_s:g} s"
                ) from None

        channel.send = guarded_send
