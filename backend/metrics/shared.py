"""A deployment's metrics: every worker publishes its snapshot, any worker adds them up.

With ``--workers N`` each worker process has its own registry, and a scrape
is answered by whichever worker accepts the connection: alone, each would
report its own share. So each worker writes its registry's snapshot to
``worker-<pid>-<token>.json`` in a directory the deployment shares
(``SSECHAT_METRICS_DIR``) every ``PUBLISH_S``, at shutdown, and whenever it
answers a scrape; the worker answering reads every file and adds them up
(``registry.merge``). Another worker's figures are at most ``PUBLISH_S`` old.

The same contract as prometheus_client's multiprocess mode (a directory
cleaned at start, a dead worker marked so its gauges stop counting but its
counts do not vanish), without its file write per increment: the hot path
adds to numbers in memory and the file is written twice a second.

A worker that dies is retired by the supervisor (``backend.serving``: the
``mark_process_dead`` of prometheus_client): its file is renamed
``retired-…``, whose counters and histograms still add up and whose gauges
no longer do. A worker file whose process is gone (a worker of another
supervisor) is read the same way. The token keeps a new worker whose pid
happens to equal a dead one's from overwriting what that one counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from backend.metrics.registry import Snapshot, merge

logger = logging.getLogger(__name__)

PUBLISH_S = 0.5
_WORKER = "worker-"
_RETIRED = "retired-"


def prepare_directory(directory: Path) -> None:
    """Create ``directory`` or empty it of what an earlier run left (before any worker starts)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        if path.name.startswith((_WORKER, _RETIRED, ".")) and path.suffix in (".json", ".tmp"):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def deployment_directory(configured: str) -> Iterator[Path]:
    """The directory for a run of several workers: ``configured`` (emptied first),
    or a temporary one removed at the end."""
    if configured:
        directory = Path(configured)
        prepare_directory(directory)
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="ssechat-metrics-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def retire_worker(directory: Path, pid: int) -> None:
    """A worker process has ended: keep what it counted, drop its gauges."""
    for path in directory.glob(f"{_WORKER}{pid}-*.json"):
        with contextlib.suppress(FileNotFoundError):
            path.rename(path.with_name(_RETIRED + path.name.removeprefix(_WORKER)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedMetrics:
    """This worker's side of the directory: publish our snapshot, add up everyone's."""

    def __init__(self, directory: Path, snapshot: Callable[[], Snapshot]) -> None:
        self._directory = directory
        self._snapshot = snapshot
        self._path = directory / f"{_WORKER}{os.getpid()}-{secrets.token_hex(4)}.json"
        self._publisher: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        self.publish(self._snapshot())
        self._publisher = asyncio.create_task(self._publish_every(), name="metrics publisher")

    async def aclose(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        self.publish(self._snapshot())

    def publish(self, snapshot: Snapshot) -> None:
        temporary = self._path.with_name("." + self._path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(snapshot, separators=(",", ":")), encoding="utf-8")
            os.replace(temporary, self._path)
        except OSError as error:
            if not self._failing:  # say it once, not twice a second
                logger.warning("cannot publish metrics to %s: %s", self._directory, error)
            self._failing = True
            return
        self._failing = False

    def collect(self) -> Snapshot:
        """Every worker's figures added up, ours fresh (and published for the others)."""
        own = self._snapshot()
        self.publish(own)
        live = [own]
        retired: list[Snapshot] = []
        for path in sorted(self._directory.glob("*.json")):
            if path == self._path:
                continue
            is_worker = path.name.startswith(_WORKER)
            if not is_worker and not path.name.startswith(_RETIRED):
                continue
            try:
                snapshot: Snapshot = json.loads(path.read_text(encoding="utf-8"))
            except (FileNotFoundError, ValueError):
                continue  # retired (renamed) since the listing; writes are atomic
            pid = int(path.name.split("-")[1])
            (live if is_worker and _alive(pid) else retired).append(snapshot)
        return merge(live, retired)

    async def _publish_every(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_S)
            self.publish(self._snapshot())
