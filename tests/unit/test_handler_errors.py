"""The mark every I/O loop logs a raising handler under, and counting it in a session's logs."""

import logging
import os

from ownrun.engine.util import handler_errors


def test_a_logged_handler_error_is_counted_in_the_session_logs(tmp_path, caplog):
    log = logging.getLogger("ownrun.test-handler-errors")
    logs = tmp_path / "logs"
    logs.mkdir()
    handler = logging.FileHandler(logs / "node-n1.log")
    log.addHandler(handler)
    try:
        try:
            raise KeyError("boom")
        except KeyError:
            handler_errors.log_handler_error(log, "failed to handle a message of type %s", 32)
    finally:
        log.removeHandler(handler)
        handler.close()
    (logs / "head.log").write_text("an ordinary line\nrequest type 74 failed\n")
    assert handler_errors.count_in_logs(str(tmp_path)) == 1
    assert "KeyError: 'boom'" in (logs / "node-n1.log").read_text()


def test_a_session_without_logs_counts_nothing(tmp_path):
    assert handler_errors.count_in_logs(str(tmp_path)) == 0
    assert handler_errors.count_in_logs(os.path.join(str(tmp_path), "missing")) == 0
