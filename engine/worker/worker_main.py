"""Entry point of a worker process (forked by the zygote): wire up and run tasks.

Owns the worker's start-up: log file, output forwarding (lines written to sys.stdout /
sys.stderr also reach the driver's terminal, prefixed with the task or actor name), the
core worker and executor, registration with the node daemon. Returns (and the process
exits) when the daemon asks the worker to exit; dies with the zygote otherwise.
"""

from __future__ import annotations

import io
import os
import sys
import threading

from ..rpc import protocol as P
from ..rpc.transport import pack
from ..util.process_tools import redirect_output


class _ForwardingStream(io.TextIOBase):
    """A text stream that writes to the log file and forwards complete lines to the driver."""

    def __init__(self, core, raw, context):
        self._core, self._raw, self._context = core, raw, context
        self._buffer = ""
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._raw.write(text)
        with self._lock:
            self._buffer += text
            if "\n" not in self._buffer:
                return len(text)
            lines, _, self._buffer = self._buffer.rpartition("\n")
        core = self._core
        core.transport.send(core.daemon_address, [pack([P.LOG_LINES, self._context.output_prefix(self._pid),
                                                        lines])])
        return len(text)

    def flush(self) -> None:
        self._raw.flush()


def run(config: dict, request: dict) -> None:
    worker_id = bytes.fromhex(request["worker_id"])
    session_dir = config["session_dir"]
    redirect_output(os.path.join(session_dir, "logs", f"worker-{request['worker_id'][:12]}.log"))
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), write_through=True)

    from .. import object_ref
    from .context import task_context
    from .core_worker import CoreWorker
    from .executor import Executor

    node_info = {"node_id": config["node_id"], "head_address": config["head_address"],
                 "session_dir": session_dir, "arena_name": config["arena_name"]}
    core = CoreWorker("worker", config["daemon_address"], worker_id, config.get("config"), node_info)
    object_ref.set_worker(core)
    executor = Executor(core)
    sys.stdout = _ForwardingStream(core, sys.stdout, task_context)
    sys.stderr = _ForwardingStream(core, sys.stderr, task_context)
    core.transport.send(core.daemon_address, [pack([P.WORKER_READY, worker_id, core.address, os.getpid(),
                                                              core.notice_token])])
    try:
        executor.run()
    finally:
        os._exit(0)
