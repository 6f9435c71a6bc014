"""How ``python -m backend`` serves the app: uvicorn, minus cut-off streams at shutdown.

Graceful shutdown (SIGTERM, or Ctrl+C)
--------------------------------------
uvicorn, on a signal, stops accepting connections, waits for the open ones
to finish (up to ``timeout_graceful_shutdown``, then cancels them), and only
then runs the app's lifespan shutdown. An SSE stream is an open connection
that finishes when its generation does, so left alone every stream would be
cut without a final event once the timeout expires. ``DrainingServer`` asks
the app to end its streams first: its ``handle_exit`` schedules the app's
``begin_shutdown`` hook (published in the lifespan state under
``backend.app.SHUTDOWN_HOOK``), which stops every generation (reason
``shutdown``: a chunk with ``finish_reason: "cancelled"``, then ``[DONE]``)
and answers new requests 503. The responses end, uvicorn sees the
connections close, and the process exits 0. ``SSECHAT_SHUTDOWN_TIMEOUT_S``
bounds the wait for clients that do not read their last bytes.

At that deadline uvicorn would cancel the requests' tasks, and each would
log a ``CancelledError`` traceback. ``DrainingServer`` closes the
connections still open instead: every request sees ``http.disconnect`` and
ends on its own path (a non-streaming completion is cancelled by
``backend.http.disconnect``, a stream detaches from the hub). Only a task
still running a second later is cancelled.

With ``--workers N`` the parent is uvicorn's ``Multiprocess`` supervisor; it
forwards SIGTERM to every worker, each worker being a ``DrainingServer``.
When it replaces or removes a worker, it retires that worker's metrics
(``backend.metrics.shared.retire_worker``): its counts stay in the
deployment's totals, its gauges leave them.

These classes live in a module of their own (not ``backend.__main__``) because
``--workers`` spawns processes that unpickle them by module name.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from pathlib import Path
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from backend.app import SHUTDOWN_HOOK, ShutdownHook
from backend.metrics.shared import retire_worker

logger = logging.getLogger(__name__)
_uvicorn_logger = logging.getLogger("uvicorn.error")

# After closing the connections at the deadline: how long requests get to end.
_AFTER_CLOSE_S = 1.0
_POLL_S = 0.1


class DrainingServer(uvicorn.Server):
    """A uvicorn server that ends the app's streams before waiting for connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:  # started: the app's lifespan has built everything
            # What startup built (modules, the app, its schemas, engines) lives as
            # long as the process: frozen, it is out of the cyclic GC's sight, and a
            # full collection — which stops every stream while it runs — walks only
            # what requests and streams hold. Garbage is collected first, not frozen.
            gc.collect()
            gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Unlike uvicorn's own, this does not re-raise the signal once shut
        # down: a shutdown asked for by SIGTERM and completed is a success (exit 0).
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C: stop waiting
            return
        loop = self._loop
        if loop is not None and self._drain is None and not loop.is_closed():
            # We may be inside a signal handler, between two bytecodes of the
            # event loop: hand the work to the loop rather than doing it here.
            loop.call_soon_threadsafe(self._begin_drain)
        self.should_exit = True

    def _begin_drain(self) -> None:
        lifespan = getattr(self, "lifespan", None)
        hook: ShutdownHook | None = (
            lifespan.state.get(SHUTDOWN_HOOK) if lifespan is not None else None
        )
        if hook is None or self._drain is not None:
            return  # still starting up, or an app without the hook
        self._drain = asyncio.get_running_loop().create_task(self._run_drain(hook))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's ``Server.shutdown``, except what happens at the deadline (see above)."""
        _uvicorn_logger.info("Shutting down")
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await asyncio.sleep(_POLL_S)
        timeout = self.config.timeout_graceful_shutdown
        if not await self._connections_closed(timeout):
            open_connections = list(self.server_state.connections)
            _uvicorn_logger.warning(
                "Closing %d connection(s) still open after the graceful shutdown timeout",
                len(open_connections),
            )
            for connection in open_connections:
                connection.transport.close()
            if not await self._connections_closed(_AFTER_CLOSE_S):
                _uvicorn_logger.error("Cancel %s running task(s)", len(self.server_state.tasks))
                for task in self.server_state.tasks:
                    task.cancel()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _connections_closed(self, timeout_s: float | None) -> bool:
        """Wait until no connection and no request task is left; False at the timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        state = self.server_state
        while (state.connections or state.tasks) and not self.force_exit:
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    @staticmethod
    async def _run_drain(hook: ShutdownHook) -> None:
        try:
            await hook()
        except Exception:
            logger.exception("ending streams at shutdown failed")


class _DrainingProcess(Process):
    """A uvicorn worker process whose server is a ``DrainingServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class DrainingMultiprocess(Multiprocess):
    """uvicorn's supervisor (spawn, health checks, restarts, SIGTERM forwarding),
    with ``DrainingServer`` workers. uvicorn builds its ``Process`` objects in
    these four methods; each is the original with the process class swapped,
    and a worker that ends has its metrics retired (``handle_ttou`` too)."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], metrics_dir: Path | None = None
    ) -> None:
        super().__init__(config, sockets)
        self._metrics_dir = metrics_dir

    def _new_process(self) -> Process:
        return _DrainingProcess(self.config, self.sockets)

    def _retire(self, process: Process) -> None:
        if self._metrics_dir is not None and process.pid is not None:
            retire_worker(self._metrics_dir, process.pid)

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = self._new_process()
            process.start()
            self.processes.append(process)

    def restart_all(self) -> None:
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._new_process()
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                return
            old.terminate()
            old.join()
            self._retire(old)
            self.processes[index] = new

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            self._retire(process)
            if process.exitcode == STARTUP_FAILURE:
                _uvicorn_logger.error(
                    "Child process [%s] failed to start, stopping the parent process.",
                    process.pid,
                )
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            _uvicorn_logger.info("Child process [%s] died", process.pid)
            replacement = self._new_process()
            replacement.start()
            self.processes[index] = replacement

    def handle_ttin(self) -> None:
        self.processes_num += 1
        process = self._new_process()
        process.start()
        self.processes.append(process)

    def handle_ttou(self) -> None:
        if self.processes_num > 1:
            process = self.processes[-1]
            super().handle_ttou()
            self._retire(process)
