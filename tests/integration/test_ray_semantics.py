"""Ray Core semantics (issue 12): a Ray program runs unchanged after swapping its import, and
what ownrun does not implement fails loudly, naming the option."""

from __future__ import annotations

import pytest
from conftest import session_shm_files, wait_for
from ownrun import engine


@engine.remote
def add(a, b=0):
    return a + b


@engine.remote
class Counter:
    def __init__(self, start):
        self.value = start

    def incr(self, by=1):
        self.value += by
        return self.value


# ---- strictness -------------------------------------------------------------------------------
def test_init_rejects_an_unknown_keyword_argument_naming_it():
    with pytest.raises(TypeError, match="num_cpu"):
        engine.init(num_cpu=2)
    assert not engine.is_initialized()


@pytest.mark.parametrize("option", [{"runtime_env": {"pip": ["x"]}}, {"local_mode": True},
                                    {"_system_config": {"a": 1}}, {"namespace": ""}])
def test_init_rejects_an_unsupported_ray_option_naming_it(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        engine.init(num_cpus=1, **option)
    assert not engine.is_initialized()


@pytest.mark.parametrize("option", [{"runtime_env": {"env_vars": {"A": "1"}}}, {"max_calls": -1},
                                    {"scheduling_strategy": "PACK"}, {"memory": 10**9},
                                    {"num_returns": "many"}])
def test_remote_and_options_reject_an_unsupported_option_naming_it(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=name):
        engine.remote(**option)(lambda: 1)
    with pytest.raises(ValueError, match=name):
        add.options(**option)
    if name not in ("num_returns", "max_calls"):
        with pytest.raises(ValueError, match=name):
            Counter.options(**option)
    if name == "max_calls":  # an actor takes no max_calls (Ray: a task option)
        with pytest.raises(ValueError, match=name):
            Counter.options(max_calls=1)


def test_unknown_actor_lifetime_and_bad_namespaces_are_rejected_not_ignored():
    with pytest.raises(ValueError, match="lifetime"):
        Counter.options(lifetime="forever")
    with pytest.raises(ValueError, match="namespace"):
        Counter.options(namespace="")
    with pytest.raises(TypeError, match="namespace"):
        Counter.options(namespace=2)


def test_second_init_raises_unless_ignore_reinit_error(cluster):
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        engine.init(num_cpus=1)
    assert engine.init(ignore_reinit_error=True) == cluster
    assert engine.get(add.remote(1, 2)) == 3


def test_default_off_values_of_ray_options_are_accepted(cluster):
    f = engine.remote(runtime_env=None, scheduling_strategy="DEFAULT", memory=None)(lambda: 7)
    assert engine.get(f.remote()) == 7


# ---- item 10: wrong arguments fail at .remote() -------------------------------------------------
def test_task_with_wrong_arguments_is_rejected_at_remote_naming_the_function(cluster):
    for args, kwargs in [((), {}), ((1, 2, 3), {}), ((1,), {"c": 3})]:
        with pytest.raises(TypeError, match="add"):
            add.remote(*args, **kwargs)
    assert engine.get(add.remote(1, b=2)) == 3


def test_actor_constructor_with_wrong_arguments_is_rejected_at_remote(cluster):
    with pytest.raises(TypeError, match="Counter"):
        Counter.remote()
    with pytest.raises(TypeError, match="Counter"):
        Counter.remote(1, 2)


def test_actor_method_with_wrong_arguments_is_rejected_at_remote_also_through_a_passed_handle(cluster):
    counter = Counter.remote(0)
    with pytest.raises(TypeError, match="Counter.incr"):
        counter.incr.remote(1, 2)
    with pytest.raises(TypeError, match="Counter.incr"):
        counter.incr.remote(step=1)

    @engine.remote
    def misuse(handle):
        try:
            handle.incr.remote(1, 2)
        except TypeError as exc:
            return str(exc)
        return "accepted"

    assert "Counter.incr" in engine.get(misuse.remote(counter))
    assert engine.get(counter.incr.remote(by=5)) == 5


# ---- item 15: wait ----------------------------------------------------------------------------
def test_wait_on_an_empty_list_returns_two_empty_lists(cluster):
    assert engine.wait([]) == ([], [])


def test_wait_on_non_refs_raises_type_error_naming_the_problem(cluster):
    with pytest.raises(TypeError, match="ObjectRef.*int"):
        engine.wait([1, 2])


# ---- items 14 and 16: actor handles and methods -----------------------------------------------
def test_two_handles_to_the_same_actor_are_equal_and_hash_equally(cluster):
    first = Counter.options(name="semantics-eq").remote(0)
    again = engine.get_actor("semantics-eq")
    other = Counter.remote(0)
    assert first == again and hash(first) == hash(again)
    assert first != other
    assert len({first, again, other}) == 2

    @engine.remote
    def echo(handles):
        return handles[0]

    assert engine.get(echo.remote([first])) == first


@engine.remote
class Shadowed:
    def __init__(self):
        self.value = 41  # an instance attribute named like the method below

    def value(self):
        return "method"

    def read(self):
        return self.__dict__["value"]


def test_a_method_named_like_an_instance_attribute_can_be_called(cluster):
    actor = Shadowed.remote()
    assert engine.get(actor.value.remote()) == "method"
    assert engine.get(actor.read.remote()) == 41


# ---- item 6: get raises at the first error ------------------------------------------------------
@engine.remote
def fail_now():
    raise ValueError("failed at once")


@engine.remote
def sleep_long(path):
    import os
    import time

    open(path, "w").close()
    while os.path.exists(path):  # until the test removes the marker
        time.sleep(0.05)
    return "done"


def test_get_of_a_failed_and_a_running_object_raises_without_waiting_for_the_running_one(cluster, tmp_path):
    import os

    marker = str(tmp_path / "running")
    running = sleep_long.remote(marker)
    failed = fail_now.remote()
    with pytest.raises(ValueError, match="failed at once"):
        engine.get([running, failed], timeout=120)  # before the fix: GetTimeoutError
    assert not engine.wait([running], timeout=0)[0]
    wait_for(lambda: os.path.exists(marker), timeout=60)
    os.remove(marker)
    assert engine.get(running, timeout=60) == "done"


# ---- item 9: the cause's type survives nested task errors ----------------------------------------
@engine.remote
def divide_by_zero():
    return 1 / 0


@engine.remote
def get_inner():
    return engine.get(divide_by_zero.remote())


@engine.remote
def get_inner_inner():
    return engine.get(get_inner.remote())


def test_task_failing_on_an_inner_get_keeps_the_cause_type_through_nested_task_errors(cluster):
    for outer in (get_inner, get_inner_inner):
        with pytest.raises(ZeroDivisionError) as info:
            engine.get(outer.remote())
        assert isinstance(info.value, engine.TaskError)
        assert "ZeroDivisionError" in str(info.value)


# ---- missing public API ----------------------------------------------------------------------------
def test_object_ref_binary_hex_and_construction_from_bytes(cluster):
    ref = engine.put(1)
    assert isinstance(ref.binary(), bytes) and ref.binary().hex() == ref.hex()
    again = engine.ObjectRef(ref.binary())
    assert again == ref and hash(again) == hash(ref)
    assert engine.ObjectID is engine.ObjectRef
    with pytest.raises(TypeError):
        engine.ObjectRef("not bytes")


def test_object_ref_future_completes_with_the_value_or_the_error(cluster):
    assert add.remote(2, 3).future().result(timeout=60) == 5
    with pytest.raises(ValueError, match="failed at once"):
        fail_now.remote().future().result(timeout=60)


def test_object_ref_as_future_is_awaitable_in_asyncio(cluster):
    import asyncio

    async def main():
        return await add.remote(4, 5).as_future()

    assert asyncio.run(main()) == 9


def test_cluster_and_available_resources_and_node_queries(cluster):
    total = engine.cluster_resources()
    assert total["CPU"] >= 2
    available = engine.available_resources()
    assert set(available) <= set(total) and available.get("CPU", 0) <= total["CPU"]
    assert engine.get_gpu_ids() == []

    @engine.remote
    def where():
        return engine.get_node_ip_address(), engine.get_gpu_ids()

    ip, gpus = engine.get(where.remote())
    assert gpus == [] and ip == engine.get_node_ip_address() and ip.count(".") == 3


def test_list_named_actors_lists_the_live_named_ones(cluster):
    named = Counter.options(name="semantics-listed").remote(0)
    engine.get(named.incr.remote())
    assert "semantics-listed" in engine.util.list_named_actors()
    assert {"name": "semantics-listed", "namespace": ""} in engine.util.list_named_actors(True)
    engine.kill(named)
    wait_for(lambda: "semantics-listed" not in engine.util.list_named_actors(),
             message="a killed actor leaves the list")


@engine.remote
class Quitter:
    def ping(self):
        return "pong"

    def quit(self):
        engine.exit_actor()


def test_exit_actor_ends_the_actor_and_later_calls_fail_with_actor_died(cluster):
    actor = Quitter.remote()
    assert engine.get(actor.ping.remote()) == "pong"
    with pytest.raises(engine.ActorDiedError):
        engine.get(actor.quit.remote(), timeout=60)
    with pytest.raises(engine.ActorDiedError):
        engine.get(actor.ping.remote(), timeout=60)
    with pytest.raises(TypeError, match="actor"):
        engine.exit_actor()
    assert engine.actor.exit_actor is engine.exit_actor


def test_first_use_without_init_starts_a_local_cluster_and_says_so(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "auto_init.py"
    script.write_text(
        "from ownrun import engine\n"
        "f = engine.remote(lambda x: x + 1)\n"
        "print('result', engine.get(f.remote(engine.put(1))))\n"
        "assert engine.is_initialized()\n"
        "print('session', engine.session_dir())\n"
        "engine.shutdown()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "result 2" in done.stdout
    assert "engine.init() was not called" in done.stderr
    session = done.stdout.split("session ", 1)[1].split()[0]
    wait_for(lambda: not session_shm_files(session), timeout=60,
             message="the auto-started cluster's store files are removed")


def test_dir_of_an_actor_handle_lists_its_methods(cluster):
    names = dir(Counter.remote(0))
    assert "incr" in names and "__init__" not in [n for n in names if n == "incr__"]
