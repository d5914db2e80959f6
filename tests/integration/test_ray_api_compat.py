"""Ray Core API surface (issue 12): actor handles' built-in methods, remote classes' attributes,
label-scheduling options checked as Ray checks them, `kill(no_restart=False)`,
`get_runtime_context().current_actor` - each as a Ray program expects it."""

from __future__ import annotations

import os

import pytest
from conftest import wait_for
from ownrun import engine


class _Base:
    BASE = 2

    @staticmethod
    def base_static():
        return 1


@engine.remote
class Attributes(_Base):
    X = 3

    def __init__(self, x=0):
        self.x = x

    @staticmethod
    def static():
        return Attributes.BASE + Attributes.X  # the remote class's attributes, inside the actor

    @classmethod
    def factory(cls, x):
        return cls(x)

    def via_class(self):
        return Attributes.static() + Attributes.base_static()

    def get_x(self):
        return self.x


@engine.remote
class Plain:
    def pid(self):
        return os.getpid()

    def me(self):
        return engine.get_runtime_context().current_actor

    def call_myself(self):
        handle = engine.get_runtime_context().current_actor
        return handle.pid.remote()


def test_actor_handles_have_ray_ready_call_and_terminate(cluster):
    a = Plain.remote()
    with pytest.raises(TypeError):
        a.__ray_ready__()
    assert engine.get(a.__ray_ready__.remote()) is True
    assert engine.get(a.__ray_call__.remote(lambda self, x: (type(self).__name__, x * 2), x=2)) == ("Plain", 4)
    pid = engine.get(a.pid.remote())
    a.__ray_terminate__.remote()
    with pytest.raises(engine.ActorDiedError, match="__ray_terminate__"):
        engine.get(a.pid.remote(), timeout=30)
    assert pid != os.getpid()


def test_remote_class_gives_class_attributes_static_and_class_methods(cluster):
    assert Attributes.X == 3 and Attributes.BASE == 2
    assert Attributes.static() == 5
    local = Attributes.factory(7)  # runs here, on the user's class, as in Ray
    assert local.get_x() == 7
    a = Attributes.remote()
    assert engine.get(a.via_class.remote()) == 6
    with pytest.raises(AttributeError):
        Attributes.no_such_attribute  # noqa: B018


def test_inheriting_from_an_actor_class_raises_ActorClassInheritanceException():
    with pytest.raises(engine.actor.ActorClassInheritanceException, match="Inheriting from actor classes"):
        class Derived(Plain):  # noqa: F841
            pass


def test_async_def_remote_function_is_rejected_as_in_ray():
    async def f():
        return 1

    with pytest.raises(ValueError, match="async def"):
        engine.remote(f)


def test_dir_lists_rays_names_and_bind_fails_naming_dags(cluster):
    assert {n for n in dir(Plain) if not n.startswith("_")} >= {"pid", "me", "options", "remote", "bind"}
    a = Plain.remote()
    assert set(dir(a)) == {"__init__", "pid", "me", "call_myself", "__ray_ready__", "__ray_call__",
                           "__ray_terminate__"}
    assert {n for n in dir(a.pid) if not n.startswith("_")} == {"options", "remote", "bind"}
    for bind in (Plain.bind, a.pid.bind, engine.remote(lambda: 1).bind):
        with pytest.raises(NotImplementedError, match="bind"):
            bind()


@pytest.mark.parametrize("options, error", [
    ({"label_selector": {"ray.io/market-type": "spot", "ray.io/accelerator-type": "H100"}}, None),
    ({"label_selector": {"zone": "!in(a, b)"}}, None),
    ({"label_selector": ""}, TypeError),
    ({"label_selector": {"-bad-key-": "x"}}, ValueError),
    ({"label_selector": {"key": "-bad-value-"}}, ValueError),
    ({"fallback_strategy": [{"label_selector": {"region": "in(us-west-1, us-east-1)"}}]}, None),
    ({"fallback_strategy": {"label_selector": {"a": "b"}}}, TypeError),
    ({"fallback_strategy": ["not-a-dict"]}, ValueError),
    ({"fallback_strategy": [{"memory": "1Gi"}]}, ValueError),
])
def test_label_options_are_checked_as_ray_does_and_refused_when_submitted(cluster, options, error):
    if error is not None:
        with pytest.raises(error):
            engine.remote(**options)(_Base)
        with pytest.raises(error):
            engine.remote(**options)(lambda: 1)
        return
    actor_class = Plain.options(**options)
    task = engine.remote(**options)(lambda: 1)
    name = next(iter(options))
    with pytest.raises(ValueError, match=f"option {name}=.*not supported by ownrun"):
        actor_class.remote()
    with pytest.raises(ValueError, match=f"option {name}=.*not supported by ownrun"):
        task.remote()
    assert engine.get(task.options(**{name: None}).remote()) == 1  # the option off again


def test_current_actor_is_a_handle_to_the_running_actor(cluster):
    a = Plain.remote()
    assert engine.get(a.me.remote()) == a
    assert engine.get(engine.get(a.call_myself.remote())) == engine.get(a.pid.remote())
    with pytest.raises(RuntimeError, match="current_actor"):
        engine.get_runtime_context().current_actor  # noqa: B018 - not in an actor


def test_kill_with_no_restart_false_restarts_the_actor(cluster):
    a = Plain.options(max_restarts=1, max_task_retries=-1).remote()
    pid = engine.get(a.pid.remote())
    engine.kill(a, no_restart=False)
    wait_for(lambda: engine.get(a.pid.remote(), timeout=30) != pid, timeout=30)
    engine.kill(a, no_restart=False)  # its one restart is used up: now it dies
    with pytest.raises(engine.ActorDiedError, match="no_restart=False"):
        wait_for(lambda: engine.get(a.pid.remote(), timeout=30) is None, timeout=30)
    b = Plain.remote()  # max_restarts=0: the kill ends it
    engine.get(b.pid.remote())
    engine.kill(b, no_restart=False)
    with pytest.raises(engine.ActorDiedError):
        wait_for(lambda: engine.get(b.pid.remote(), timeout=30) is None, timeout=30)


def test_get_actor_of_a_missing_name_says_failed_to_look_up(cluster):
    with pytest.raises(ValueError, match="Failed to look up actor with name 'nobody'"):
        engine.get_actor("nobody")


def test_workers_import_modules_beside_the_driver_script_but_not_for_python_m(tmp_path):
    import subprocess
    import sys

    package = tmp_path / "package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("def where():\n    import sys\n    return sys.path\n")
    driver = (
        "import sys\n"
        "from ownrun import engine\n"
        "engine.init(num_cpus=1)\n"
        "paths = engine.get(engine.remote(lambda: __import__('sys').path).remote())\n"
        "print('HERE' if {folder!r} in paths else 'ABSENT')\n"
        "engine.shutdown()\n")
    (package / "script.py").write_text(
        driver.format(folder=str(package)).replace(
            "print(", "import helper\nassert engine.get(engine.remote(helper.where).remote())\nprint("))
    (package / "module.py").write_text(driver.format(folder=str(package)))
    done = subprocess.run([sys.executable, str(package / "script.py")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "HERE" in done.stdout
    done = subprocess.run([sys.executable, "-m", "package.module"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ABSENT" in done.stdout


@engine.remote
class Stuck:
    def fail(self):
        raise ValueError("boom")

    def hang(self):
        import threading

        threading.Event().wait()


def test_get_raises_at_once_for_an_object_already_failed_while_others_never_finish(cluster):
    a, b = Stuck.remote(), Stuck.remote()
    failed = a.fail.remote()
    with pytest.raises(ValueError):
        engine.get(failed)
    with pytest.raises(ValueError, match="boom"):  # before: waited for hang() forever
        engine.get([b.hang.remote(), failed], timeout=60)
    engine.kill(b)


def test_task_error_instance_of_the_cause_reads_its_attributes_and_pickles(cluster):
    import cloudpickle

    class _TwoFields(Exception):  # local: pickled by value (workers cannot import this module)
        def __init__(self, one, two):
            super().__init__(one, two)
            self.one, self.two = one, two

    def raise_it():
        raise _TwoFields("a", "b")

    with pytest.raises(_TwoFields) as info:
        engine.get(engine.remote(raise_it).remote())
    assert isinstance(info.value, engine.TaskError)
    assert (info.value.one, info.value.two) == ("a", "b")  # the cause's attributes
    dual = engine.TaskError("f", "traceback", _TwoFields("x", "y")).make_dual_exception_instance()
    again = cloudpickle.loads(cloudpickle.dumps(dual))
    assert isinstance(again, engine.TaskError) and isinstance(again, _TwoFields)
    assert (again.one, again.two) == ("x", "y")


def test_an_unserializable_task_exception_has_a_cause_saying_so(cluster):
    import threading

    class Unpicklable(Exception):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()

    def raise_it():
        raise Unpicklable

    with pytest.raises(engine.TaskError) as info:
        engine.get(engine.remote(raise_it).remote())
    assert isinstance(info.value.cause, engine.EngineError)
    assert "isn't serializable" in str(info.value.cause)
    assert "Unpicklable" in str(info.value)  # the traceback text is kept


# ---- cancel of actor calls (Ray: a queued one is dropped, a running one only told) ----------
@engine.remote
class Worker:
    def spin(self, started):
        open(started, "w").close()
        while not engine.get_runtime_context().is_canceled():
            pass
        return "stopped"

    def pid(self):
        return os.getpid()


@engine.remote
class AsyncWorker:
    async def sleep(self, started):
        import asyncio

        open(started, "w").close()
        await asyncio.sleep(600)

    async def ping(self):
        return "pong"


def test_cancel_of_actor_calls_drops_queued_ones_and_tells_running_ones(cluster, tmp_path):
    a = Worker.remote()
    started = str(tmp_path / "started")
    running = a.spin.remote(started)
    queued = a.pid.remote()
    wait_for(lambda: os.path.exists(started), timeout=30)
    engine.cancel(queued)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(queued, timeout=30)
    engine.cancel(running)  # not interrupted: it sees is_canceled() and returns
    assert engine.get(running, timeout=30) == "stopped"
    assert engine.get(a.pid.remote(), timeout=30) > 0  # the actor goes on, in order
    with pytest.raises(ValueError, match="force=True"):
        engine.cancel(a.pid.remote(), force=True)


def test_cancel_of_an_async_actor_call_cancels_its_asyncio_task(cluster, tmp_path):
    a = AsyncWorker.remote()
    started = str(tmp_path / "started")
    ref = a.sleep.remote(started)
    wait_for(lambda: os.path.exists(started), timeout=30)
    engine.cancel(ref)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(ref, timeout=30)
    assert engine.get(a.ping.remote(), timeout=30) == "pong"


def test_is_canceled_outside_a_task_raises(cluster):
    with pytest.raises(RuntimeError, match="is_canceled"):
        engine.get_runtime_context().is_canceled()


def test_a_remote_function_or_actor_class_over_100_mb_pickled_is_refused_naming_it(cluster):
    big = bytearray(101 * 1000 * 1000)

    def f():
        return len(big)

    class Holder:
        def size(self):
            return len(big)

    with pytest.raises(ValueError, match="The remote function .*f is too large"):
        engine.remote(f).remote()
    with pytest.raises(ValueError, match="The actor Holder is too large"):
        engine.remote(Holder).remote()


def test_workers_inherit_the_drivers_no_user_site_flag(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "flags.py"
    script.write_text(
        "import sys\n"
        "from ownrun import engine\n"
        "engine.init(num_cpus=1)\n"
        "flag = engine.get(engine.remote(lambda: __import__('sys').flags.no_user_site).remote())\n"
        "print('FLAG', flag, sys.flags.no_user_site)\n"
        "engine.shutdown()\n")
    done = subprocess.run([sys.executable, "-s", str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "FLAG 1 1" in done.stdout


def test_a_cancelled_task_sees_keyboard_interrupt_and_may_return_a_value(cluster, tmp_path):
    started = tmp_path / "started"

    def handles_the_cancel(path):
        open(path, "w").close()
        try:
            while True:
                pass
        except KeyboardInterrupt:  # what Ray raises in the task
            if engine.get_runtime_context().is_canceled():
                return "cancelled, handled"
        return "not reached"

    ref = engine.remote(handles_the_cancel).remote(str(started))
    wait_for(started.exists, timeout=60)
    engine.cancel(ref)
    assert engine.get(ref, timeout=60) == "cancelled, handled"


# ---- num_returns="dynamic": one ref whose value lists the items' refs ---------------------------
@engine.remote(num_returns="dynamic")
def squares(n, fail_at=None):
    import numpy as np

    for i in range(n):
        if i == fail_at:
            raise ValueError(f"failed at {i}")
        yield np.full(50_000, i * i) if i % 2 else i * i  # odd items large (shared memory)


@engine.remote
def total(generator):  # the ref, passed at top level, arrives as its value (as in Ray)
    import numpy as np

    return sum(int(np.max(v)) for v in engine.get(list(generator)))


def test_dynamic_returns_give_one_ref_whose_value_lists_the_items(cluster):
    ref = squares.remote(5)
    assert isinstance(ref, engine.ObjectRef)
    generator = engine.get(ref, timeout=60)
    assert isinstance(generator, engine.DynamicObjectRefGenerator) and len(generator) == 5
    values = engine.get(list(generator), timeout=60)
    assert [int(v.max()) if hasattr(v, "max") else v for v in values] == [0, 1, 4, 9, 16]
    assert engine.get(total.remote(ref), timeout=60) == 30  # passed on: a borrower reads them too
    assert len(engine.get(squares.remote(0), timeout=60)) == 0


def test_a_dynamic_task_that_raises_gives_its_error_to_the_ref(cluster):
    with pytest.raises(ValueError, match="failed at 2"):
        engine.get(squares.remote(5, fail_at=2), timeout=60)


def test_dynamic_items_are_freed_with_the_ref_that_lists_them(cluster):
    from ownrun.engine.api import _core

    core = _core()
    ref = squares.remote(4)
    generator = engine.get(ref, timeout=60)
    item_ids = [r.id for r in generator]
    del generator
    assert all(i in core.tm.refs.refs for i in item_ids)  # held by the ref's value
    del ref
    def freed():
        engine.put(0)  # a put applies the dropped refs' counts first
        return not any(i in core.tm.refs.refs for i in item_ids)

    wait_for(freed, timeout=30)


@engine.remote
class Named:
    def task_name(self):
        return engine.get_runtime_context().get_task_name()


def test_actor_method_options_name_names_the_call(cluster):
    a = Named.remote()
    assert engine.get(a.task_name.remote(), timeout=60) == "Named.task_name"
    assert engine.get(a.task_name.options(name="custom").remote(), timeout=60) == "custom"
    assert engine.get(engine.remote(lambda: engine.get_runtime_context().get_task_name()).options(
        name="a_task").remote(), timeout=60) == "a_task"
