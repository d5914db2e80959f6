"""TaskError.as_instanceof_cause: the error a get raises is also an instance of the task's
exception class; a class that refuses subclasses gets a plain TaskError and one warning."""

from __future__ import annotations

import logging

from ownrun.engine.errors import TaskError


class Custom(ValueError):
    pass


class Final(Exception):
    def __init_subclass__(cls, *args, **kwargs):
        raise TypeError("cannot subclass Final")


def test_the_error_is_also_an_instance_of_the_tasks_exception_class():
    error = TaskError("f", "Traceback ...", Custom("bad")).as_instanceof_cause()
    assert isinstance(error, TaskError) and isinstance(error, Custom) and isinstance(error, ValueError)
    assert error.cause.args == ("bad",)


def test_a_class_that_refuses_subclasses_gives_a_plain_task_error_and_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="ownrun.engine.errors"):
        first = TaskError("f", "Traceback ...", Final("x")).as_instanceof_cause()
        second = TaskError("g", "Traceback ...", Final("y")).as_instanceof_cause()
    assert type(first) is TaskError and type(second) is TaskError
    assert isinstance(first.cause, Final) and str(second.cause) == "y"
    warnings = [r for r in caplog.records if "cannot be subclassed" in r.getMessage()]
    assert len(warnings) == 1 and "task_error.cause" in warnings[0].getMessage()
