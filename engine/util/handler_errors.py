"""One mark for "a message handler raised", in every process's log, and counting it.

Every I/O loop (head, node daemon, core worker, executor) logs a handler that raised with
`log_handler_error(log, ...)`, which writes the traceback under one fixed mark. The driver
that stopped an embedded cluster counts the marks in the session's logs (`count_in_logs`),
so a test session can fail when any process of any cluster it ran had a handler raise — the
counterpart, across processes, of each loop's own `handler_errors` counter.

Pure functions; thread-safe. Failures: an unreadable log counts as no marks (it is reported
by the log's owner, not here).
"""

from __future__ import annotations

import glob
import logging
import os

MARK = "ownrun-handler-error:"
MALFORMED_MARK = "ownrun-malformed-message:"  # logged by rpc/schema.py when it drops a message
UNAUTHORIZED_MARK = "ownrun-unauthorized-message:"  # a notice whose sender could not prove its right (notices.py)


def log_handler_error(log: logging.Logger, what: str, *args) -> None:
    """Logs the exception being handled, under the mark. Call from an `except` block."""
    log.exception(f"{MARK} {what}", *args)


def count_in_logs(session_dir: str, mark: str = MARK) -> int:
    """How many lines with `mark` (default: handler errors) the processes of the session at
    `session_dir` logged. Malformed messages are logged at most once per type every 10 s, so
    for MALFORMED_MARK this counts log lines, not messages."""
    total = 0
    for path in glob.glob(os.path.join(session_dir, "logs", "*.log")):
        try:
            with open(path, errors="replace") as f:
                total += sum(line.count(mark) for line in f)
        except OSError:
            continue
    return total
