"""Runs a selection of Ray's own core test files against ownrun through the renaming-only
`ray` package beside this file, and prints how many pass and why the others fail.

    python tools/ray_compat/run.py                      # the default files, from a Ray snapshot
    python tools/ray_compat/run.py --ray-tests DIR      # Ray test files already on disk
    python tools/ray_compat/run.py --files test_basic.py test_cancel.py -k "not spill"

Ray's test files are not in this repository: they are read at run time from a git snapshot
of ray-project/ray (`--git-dir`, default: the first /work/.mirror/*/repo holding
python/ray/tests/test_basic.py; the search tool's `fetch github:<owner>/ray` makes one -
ray-project/ray itself is over its size limit, a fork's snapshot such as dayshah/ray is not)
or from a directory of them (`--ray-tests`). Each file runs in its own pytest process (a
per-test timeout from pytest-timeout, and a per-file one), with this folder on PYTHONPATH.

The figure: tests that use Ray internals (decided statically from each test's source, its
decorators, the fixtures it asks for and the module-level helpers it calls - INTERNAL_* below
- or at run time, when it touched a marker of ray/_internals.py) and skipped tests are left
out of the denominator; every other test counts, and each failure gets a cause from
FAILURE_RULES below (first match wins), so the figure is reproducible.
"""

from __future__ import annotations

import argparse
import ast
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FILES = [
    "test_basic.py", "test_basic_2.py", "test_basic_3.py", "test_basic_4.py", "test_basic_5.py",
    "test_actor.py", "test_actor_advanced.py", "test_asyncio.py", "test_cancel.py",
    "test_reference_counting.py", "test_reference_counting_2.py", "test_failure.py",
    "test_object_spilling.py",
]

# ---- what counts as using Ray internals (static) -------------------------------------------
# A dotted name used in a test (or what it reaches) starting with one of these.
INTERNAL_DOTTED = {
    "ray._private": "ray._private", "ray._raylet": "ray._raylet", "ray._common": "ray._common",
    "ray._config": "ray._private", "ray.experimental.internal_kv": "internal_kv",
    "ray.experimental": "ray.experimental", "ray.util.state": "state API (ray.util.state)",
    "ray.util.client": "Ray Client", "ray.core": "ray.core (protobufs)", "ray.runtime_env": "runtime_env",
    "ray.worker": "ray._private", "ray.state": "ray._private", "ray.tests": "Ray test harness",
    "ray.autoscaler": "autoscaler", "ray.dashboard": "dashboard", "ray.get_gpu_ids": "GPU",
}
# Names from Ray's test helper modules that ray/_common/test_utils.py provides on the public
# API: using them is not using internals.
HELPERS = {"wait_for_condition", "async_wait_for_condition", "SignalActor", "Semaphore",
           "client_test_enabled", "create_remote_signal_actor", "client_mode_should_convert",
           "wait_for_pid_to_exit"}
# Keyword arguments, dict keys or strings that mean internal configuration or GPUs.
INTERNAL_WORDS = {
    "_system_config": "_system_config", "runtime_env": "runtime_env", "num_gpus": "GPU", "GPU": "GPU",
    "_internal_kv_get": "internal_kv", "_internal_kv_put": "internal_kv", "_metadata": "ray._private",
    "RAY_PROCESSES": "autoscaler", "gcs_utils": "ray._private", "global_worker": "ray._private",
    "accelerator_type": "GPU", "include_dashboard": "dashboard",
    "node:__internal_head__": "Ray internal resources (node:__internal_head__)", "_temp_dir": "ray._private", "_node_name": "ray._private",
}
# Objects whose _private attributes are not Ray's (a test calling `os._exit` uses no internals).
NOT_RAY = {"self", "cls", "os", "sys", "threading", "asyncio", "signal", "gc", "np", "_thread", "time"}
# Fixtures (of Ray's conftest) whose setup is itself internal.
INTERNAL_FIXTURES = {
    "error_pubsub": "GCS pubsub (error_pubsub)", "object_spilling_config": "spilling config",
    "fs_only_object_spilling_config": "spilling config", "slow_spilling_config": "spilling config",
    "unstable_spilling_config": "spilling config", "multi_node_object_spilling_config": "spilling config",
    "call_ray_start": "ray CLI (call_ray_start)", "start_http_proxy": "ray._private",
    "set_enable_auto_connect": "ray._private", "ray_start_cluster_head_with_env_vars": "env tuning",
    "enable_concurrency_group": "concurrency groups internals", "preload": "ray._private",
}
# Names of ray.cluster_utils.Cluster that ray/cluster_utils.py maps to ownrun.
CLUSTER_MAPPED = {"Cluster", "cluster_not_supported"}

# ---- failure causes (first match wins; applied to the failure's one-line message) -----------
FAILURE_RULES = [
    (r"Timeout >|Timeout \(|timed out after .* s \(file\)", "hang: test timed out"),
    (r"ray\.util\.(placement_group|scheduling_strategies)|placement_group", "placement groups"),
    (r"namespace=|'namespace'", "namespaces"),
    (r"num_returns='(streaming|dynamic)'|ObjectRefGenerator|num_returns=.*not supported",
     "generators (num_returns streaming/dynamic)"),
    (r"option (label_selector)=|: (fallback_strategy);", "label scheduling (label_selector/fallback_strategy)"),
    (r"option (\w+)=.* is not supported by ownrun", "option not supported: {0}"),
    (r"unknown option\(s\) for [^:]*: ([\w, ]+);", "unknown option: {0}"),
    (r"init\(\) got an unexpected keyword argument '(\w+)'", "init() option missing: {0}"),
    (r"module '(ray[\w.]*)' has no attribute '(\w+)'", "missing API: {0}.{1}"),
    (r"MissingInOwnrun: ([\w.]+)", "missing API: {0}"),
    (r"(\w+)\(\) got an unexpected keyword argument '(\w+)'", "missing keyword: {0}({1}=)"),
    (r"has no method '(__ray_\w+__)'", "missing API: actor handle {0}"),
    (r"has no method '(\w+)'", "missing API: actor handle attribute"),
    (r"'(\w+)' object has no attribute '(\w+)'", "missing attribute: {0}.{1}"),
    (r"(?i)expected a BaseException type.*Marker|must be a BaseException type, not Marker",
     "missing API: an error type"),
    (r"DID NOT RAISE (?:<class ')?([\w.]+)", "did not raise {0}"),
    (r"ObjectStoreFullError", "object store full (no spilling/waiting)"),
    (r"was not sent to this worker", "bug: 'function was not sent to this worker' after a cancel"),
    (r"NodeStartError: the head did not start", "bug/flake: embedded cluster's head exited at start-up"),
    (r"the actor was not created", "race: a call before the actor's instance exists (issue 12 #17)"),
    (r"ActorDiedError|actor .* died", "actor died unexpectedly"),
    (r"TaskCancelledError", "cancel semantics"),
    (r"GetTimeoutError", "get timed out (work did not finish)"),
    (r"RuntimeNotInitializedError|is not initialized", "not initialized (init/shutdown semantics)"),
    (r"AlreadyInitializedError|already called", "init() called twice"),
    (r"wasn't met before the timeout", "wait_for_condition timed out (behaviour differs)"),
    (r"^(assert|AssertionError)", "assertion: behaviour differs"),
    (r"^(\w+(?:Error|Exception))\b", "raised {0}"),
]


# Failures of the test harness, not of ownrun: left out of the denominator like skips.
HARNESS_RULES = [
    (r"async def functions are not natively supported", "async test function: pytest-asyncio not installed"),
]

# Causes read from the failing test's source and output, for failures whose one-line message
# does not say (mostly plain assertions). Keyed by test function name.
KNOWN_CAUSES = {
    "test_release_resources_race": "get() in a task releases its CPU though the objects are ready (issue 12 #12)",
    "test_not_release_resource": "get() in a task releases its CPU though the objects are ready (issue 12 #12)",
    "test_oversized_function": "no size limit on a pickled remote function (Ray: ValueError)",
    "test_load_code_from_local": "second driver: ray.job_config.JobConfig / init(address) of a running cluster",
    "test_load_from_local_function": "second driver: ray.job_config.JobConfig / init(address) of a running cluster",
    "test_actor_scheduling": "ActorDiedError after exit_actor() does not say 'exit_actor'",
    "test_job_id_consistency": "missing API: job ids (ray.runtime_context, ObjectRef.job_id())",
    "test_actor_killing": "kill(no_restart=False) does not restart the actor",
    "test_worker_sys_path_contains_driver_script_directory": "workers' sys.path lacks the driver script's directory",
    "test_site_flag_inherited": "patches ray._private.services._no_site (internal): ownrun's workers inherit -S/-s, not a Ray mock",
    "test_auto_global_gc": "no global gc.collect() in workers under store pressure",
    "test_not_reusing_task_workers": "store full: a put neither spills nor waits for pinned space (issue 12 #11)",
    "test_actor_class_attributes": "class attributes / static methods through a remote class (issue 12 API)",
    "test_actor_static_attributes": "class attributes / static methods through a remote class (issue 12 API)",
    "test_actor_mro": "class attributes / static methods through a remote class (issue 12 API)",
    "test_actor_autocomplete": "dir() of an actor class/method lacks Ray's names (bind, methods)",
    "test_keep_calling_get_actor": "named actors are never garbage-collected (issue 12 #2)",
    "test_get_actor_from_concurrent_tasks": "lifetime='detached' not supported (issue 12 #2)",
    "test_get_or_create_actor_from_multiple_threads": "lifetime='detached' not supported (issue 12 #2)",
    "test_actor_load_balancing": "actors are not spread across nodes (all placed on the first)",
    "test_pending_actor_removed_by_owner": "pending actors of a dead owner are never cancelled (issue 12 #7)",
    "test_cancel_chain": "non-force cancel of a task blocked in get() hangs (issue 12 #4)",
    "test_cancel_multiple_dependents": "non-force cancel of a task blocked in get() hangs (issue 12 #4)",
    "test_ray_task_cancel_and_retry_race_condition": "a cancelled task's lost output is re-executed (Ray: ObjectReconstructionFailedError)",
    "test_single_cpu_cancel": "non-force cancel of a task blocked in get() hangs (issue 12 #4)",
    "test_comprehensive": "non-force cancel of a task blocked in get() hangs (issue 12 #4)",
    "test_remote_cancel": "cancel of a ref owned by another process does nothing (issue 12 #5)",
    "test_recursive_cancel": "cancel(recursive=True) leaves the children running (issue 12 #5)",
    "test_is_canceled_with_keyboard_interrupt": "cancel: no KeyboardInterrupt in the task, no runtime_context().is_canceled()",
    "test_version_mismatch": "missing API: ray.__version__ (and a version check on joining)",
    "test_unserializable_exception": "an unserializable exception gives TaskError.cause None (Ray: a RayError saying so)",
    "test_final_user_exception": "no warning on logger 'ray.exceptions' for a final exception class",
    "test_actor_inheritance": "missing API: ray.actor.ActorClassInheritanceException",
    "test_async_function_errored": "@remote on an 'async def' function is not rejected (Ray: ValueError)",
    "test_asyncio_actor_shutdown_when_non_async_method_mixed": "timing: the 10000 pings finish before the method's 1 s sleep ends",
    "test_resource_leak_when_cancel_actor_in_phase_of_creating": "kill of an actor still in its constructor does not free its CPU",
    "test_actor_namespace_access": "namespaces and lifetime='detached' (issue 12 #2)",
    "test_options_name": "no ray::<name> process title (an actor method's .options(name=) itself works)",
}


def find_ray_git_dir() -> str | None:
    for git_dir in sorted(glob.glob("/work/.mirror/*/repo")):
        if os.path.isdir(os.path.join(git_dir, ".git")):
            git_dir = os.path.join(git_dir, ".git")
        probe = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "-e",
                                "HEAD:python/ray/tests/test_basic.py"], capture_output=True)
        if probe.returncode == 0:
            return git_dir
    return None


def copy_tests(args, dest: str) -> tuple[list[str], str]:
    """Writes the chosen Ray test files into `dest`; returns (names, where they came from)."""
    names = []
    if args.ray_tests:
        for name in args.files:
            src = os.path.join(args.ray_tests, name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(dest, name))
                names.append(name)
        return names, os.path.abspath(args.ray_tests)
    git_dir = args.git_dir or find_ray_git_dir()
    if git_dir is None:
        sys.exit("No Ray test files: pass --ray-tests DIR (a copy of ray-project/ray's "
                 "python/ray/tests) or --git-dir GIT (a ray-project/ray snapshot; the search tool's "
                 "`fetch github:dayshah/ray` makes one under /work/.mirror/, or `git clone "
                 "--depth 1 https://github.com/ray-project/ray`).")
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    for name in args.files:
        out = subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:python/ray/tests/{name}"],
                             capture_output=True)
        if out.returncode == 0:
            with open(os.path.join(dest, name), "wb") as f:
                f.write(out.stdout)
            names.append(name)
    return names, f"{git_dir} @ {commit[:12]}"


# ---- static classification --------------------------------------------------------------------
def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _internal_imports(tree: ast.AST) -> dict[str, str]:
    """Local names bound to internals by imports anywhere in the file: name -> reason."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                reason = _dotted_reason(alias.name)
                if reason and alias.asname:
                    bound[alias.asname] = reason
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ray"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if (alias.asname or alias.name) == "ray":  # `from ray.util.client import ray`
                    continue  # under `if client_test_enabled():` - never taken here
                if alias.name in HELPERS:
                    continue
                if node.module == "ray.cluster_utils" and alias.name in CLUSTER_MAPPED:
                    continue
                reason = _dotted_reason(full) or INTERNAL_WORDS.get(alias.name)
                if reason:
                    bound[alias.asname or alias.name] = reason
    return bound


def _dotted_reason(dotted: str) -> str | None:
    if dotted.startswith("ray.cluster_utils."):
        rest = dotted.split(".")[2]
        return None if rest in CLUSTER_MAPPED else "cluster_utils internals"
    for prefix, reason in INTERNAL_DOTTED.items():
        if dotted == prefix or dotted.startswith(prefix + "."):
            leaf = dotted.split(".")[-1]
            if prefix in ("ray._common", "ray._private") and leaf in HELPERS:
                return None
            if "test_utils" in dotted and leaf in HELPERS:
                return None
            return reason
    return None


def _uses(node: ast.AST, bound: dict[str, str]) -> tuple[str | None, set[str]]:
    """(the first internal use found, the plain names referenced) within `node`."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            dotted = _dotted(sub)
            if dotted:
                reason = _dotted_reason(dotted)
                if reason:
                    return reason, names
                head = dotted.split(".")[0]
                if head in bound:
                    return bound[head], names
            if (sub.attr.startswith("_") and not sub.attr.startswith("__")
                    and not (isinstance(sub.value, ast.Name) and sub.value.id in NOT_RAY)):
                return "Ray private attributes (handle._actor_id, ref._on_completed, ...)", names
        elif isinstance(sub, ast.Name):
            if sub.id in bound:
                return bound[sub.id], names
            if sub.id in INTERNAL_WORDS:
                return INTERNAL_WORDS[sub.id], names
            names.add(sub.id)
        elif isinstance(sub, ast.Import):
            for alias in sub.names:
                reason = _dotted_reason(alias.name)
                if reason:
                    return reason, names
        elif isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("ray"):
            for alias in sub.names:
                if alias.name not in HELPERS and (alias.asname or alias.name) != "ray":
                    reason = _dotted_reason(f"{sub.module}.{alias.name}")
                    if reason:
                        return reason, names
        elif isinstance(sub, ast.keyword) and sub.arg in INTERNAL_WORDS:
            return INTERNAL_WORDS[sub.arg], names
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            if sub.value in INTERNAL_WORDS:
                return INTERNAL_WORDS[sub.value], names
            if re.fullmatch(r"RAY_[A-Za-z0-9_]+", sub.value):  # Ray's config environment variables
                return "Ray config env vars (RAY_*)", names
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in sub.args.args:
                names.add(arg.arg)
    return None, names


def classify_static(path: str) -> dict[str, str | None]:
    """Test function name (Class::name for methods) -> the internal it uses, or None."""
    with open(path) as f:
        tree = ast.parse(f.read())
    bound = _internal_imports(tree)
    defs = {}  # module-level functions, classes and fixtures by name
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = node
    cache: dict[str, str | None] = {}

    def reach(name: str, seen: set) -> str | None:
        if name in INTERNAL_FIXTURES:
            return INTERNAL_FIXTURES[name]
        if name in cache:
            return cache[name]
        if name not in defs or name in seen:
            return None
        seen.add(name)
        reason, names = _uses(defs[name], bound)
        if reason is None:
            for other in sorted(names):
                reason = reach(other, seen)
                if reason:
                    break
        cache[name] = reason
        return reason

    autouse = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
               and any("autouse" in ast.dump(d) for d in node.decorator_list)]

    def reach_test(name: str) -> str | None:
        for fixture in autouse:  # applies to every test of the file
            reason = reach(fixture, set())
            if reason:
                return reason
        return reach(name, set())

    tests = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            tests[node.name] = reach_test(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            class_reason = reach_test(node.name)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    tests[f"{node.name}::{item.name}"] = class_reason
    return tests


def failure_cause(message: str) -> str:
    for pattern, label in FAILURE_RULES:
        m = re.search(pattern, message, re.MULTILINE)
        if m:
            return label.format(*[g.strip() if g else "" for g in m.groups()])
    return "other: " + message[:80]


# ---- running ---------------------------------------------------------------------------------
def run_file(name: str, workdir: str, args, deselect: list[str]) -> tuple[list[dict], float, bool]:
    report = os.path.join(workdir, name + ".jsonl")
    if args.reuse:  # classify an earlier run's records again
        if not os.path.exists(report):  # every test of the file was deselected
            return [], 0.0, False
        with open(report) as f:
            return [json.loads(line) for line in f if line.strip()], 0.0, False
    env = dict(os.environ)
    env["RAY_COMPAT_DESELECT"] = json.dumps(deselect)
    env["PYTHONPATH"] = os.pathsep.join([HERE] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["RAY_COMPAT_REPORT"] = report
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "ray_compat_report",
           f"--timeout={args.timeout}", "--rootdir", workdir, "-o", "addopts=", name]
    if args.k:
        cmd += ["-k", args.k]
    start = time.monotonic()
    timed_out = False
    with open(os.path.join(workdir, name + ".log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=args.file_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)  # the file's own pytest and the clusters it started
            proc.wait()
    records = []
    if os.path.exists(report):
        with open(report) as f:
            records = [json.loads(line) for line in f if line.strip()]
    return records, time.monotonic() - start, timed_out


def outcomes(records: list[dict]) -> dict[str, dict]:
    """nodeid -> {"outcome": passed|failed|error|skipped, "message": ...}."""
    tests: dict[str, dict] = {}
    for r in records:
        if r["when"] == "collect":
            tests[r["nodeid"] or "<collect>"] = {"outcome": "error", "message": "collection: " + r["message"]}
            continue
        t = tests.setdefault(r["nodeid"], {"outcome": "passed", "message": ""})
        if r["outcome"] == "skipped":
            if t["outcome"] == "passed":
                t.update(outcome="skipped", message=r["message"])
        elif r["outcome"] == "failed":
            if r["when"] == "call":
                t.update(outcome="failed", message=r["message"])
            elif t["outcome"] in ("passed", "skipped"):
                t.update(outcome="error", message=f"{r['when']}: {r['message']}")
    return tests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-tests", help="a directory holding Ray's test files")
    parser.add_argument("--git-dir", help="a git directory of a ray-project/ray snapshot")
    parser.add_argument("--files", nargs="+", default=DEFAULT_FILES)
    parser.add_argument("-k", help="pytest -k expression")
    parser.add_argument("--timeout", type=float, default=60, help="per-test timeout, s")
    parser.add_argument("--file-timeout", type=float, default=600, help="per-file timeout, s")
    parser.add_argument("--jobs", type=int, default=1, help="files run at once")
    parser.add_argument("--run-internal", action="store_true",
                        help="also run the tests that use Ray internals (left out of the figure either way)")
    parser.add_argument("--json", help="write every test's outcome and cause here")
    parser.add_argument("--reuse", metavar="DIR", help="classify the records of an earlier --keep run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)

    if args.reuse:
        workdir, args.keep = args.reuse, True
        names = [n for n in args.files if os.path.exists(os.path.join(workdir, n))]
        source = f"the earlier run in {workdir}"
    else:
        workdir = tempfile.mkdtemp(prefix="ray-compat-")
        names, source = copy_tests(args, workdir)
        shutil.copy(os.path.join(HERE, "conftest.py"), os.path.join(workdir, "conftest.py"))
    print(f"Ray tests from {source}; running {len(names)} files in {workdir}", flush=True)

    static = {name: classify_static(os.path.join(workdir, name)) for name in names}
    results = {}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {}
        for name in names:
            internal = [] if args.run_internal else [t for t, r in static[name].items() if r]
            futures[name] = pool.submit(run_file, name, workdir, args, internal)
        for name in names:
            records, seconds, timed_out = futures[name].result()
            results[name] = (outcomes(records), seconds, timed_out)
            print(f"  {name}: {len(results[name][0])} tests in {seconds:.0f} s"
                  + (" (file timed out)" if timed_out else ""), flush=True)

    rows, causes, internals, per_test = [], collections.Counter(), collections.Counter(), []
    harness_counts = collections.Counter()
    totals = collections.Counter()
    for name in names:
        tests, seconds, timed_out = results[name]
        row = collections.Counter()
        for nodeid, t in tests.items():
            func = nodeid.split("::", 1)[1].split("[")[0] if "::" in nodeid else nodeid
            reason = static[name].get(func)
            outcome, message = t["outcome"], t["message"]
            if reason is None and re.search(r"UsesRayInternals", message):
                reason = "runtime: " + (re.search(r"UsesRayInternals: ([\w.]+)", message) or [None, "?"])[1]
            cause = None
            harness = next((label for pattern, label in HARNESS_RULES if re.search(pattern, message)), None)
            if outcome == "skipped":
                bucket = "skipped"
            elif harness and reason is None:
                bucket = "skipped"
                harness_counts[harness] += 1
            elif reason is not None:
                bucket = "internal"
                internals[reason.split(":")[0] if reason.startswith("runtime") else reason] += 1
                row["internal_passed" if outcome == "passed" else "internal_other"] += 1
            else:
                bucket = outcome
                if outcome != "passed":
                    cause = KNOWN_CAUSES.get(func) or failure_cause(message)
                    causes[cause] += 1
            row[bucket] += 1
            per_test.append({"file": name, "test": nodeid, "outcome": outcome, "internal": reason,
                             "cause": cause, "message": message[:500]})
        if timed_out:
            row["file_timeout"] = 1
        if not args.run_internal:
            for func, reason in static[name].items():
                if reason:
                    row["internal"] += 1
                    row["internal_not_run"] += 1
                    internals[reason] += 1
                    per_test.append({"file": name, "test": f"{name}::{func}", "outcome": "not run",
                                     "internal": reason, "cause": None, "message": ""})
        rows.append((name, row, seconds))
        totals.update(row)

    print()
    print(f"{'file':<30} {'passed':>6} {'failed':>6} {'errored':>7} {'skipped':>7} {'internal':>8} {'rate':>6} {'s':>5}")
    for name, row, seconds in rows:
        counted = row["passed"] + row["failed"] + row["error"]
        rate = f"{100 * row['passed'] / counted:.0f}%" if counted else "-"
        print(f"{name:<30} {row['passed']:>6} {row['failed']:>6} {row['error']:>7} {row['skipped']:>7} "
              f"{row['internal']:>8} {rate:>6} {seconds:>5.0f}" + ("  FILE TIMED OUT" if row["file_timeout"] else ""))
    counted = totals["passed"] + totals["failed"] + totals["error"]
    print(f"{'TOTAL':<30} {totals['passed']:>6} {totals['failed']:>6} {totals['error']:>7} "
          f"{totals['skipped']:>7} {totals['internal']:>8}")
    print()
    if counted:
        print(f"Pass rate over tests that use no Ray internals: {totals['passed']}/{counted} = "
              f"{100 * totals['passed'] / counted:.1f}%  (target 85%)")
    print(f"Left out: {totals['internal']} tests using Ray internals ({totals['internal_not_run']} not run, counted per function, "
          f"{totals['internal_passed']} run and passed anyway), {totals['skipped']} skipped.")
    print("\nFailures (tests using no internals) by cause:")
    for cause, n in causes.most_common():
        print(f"  {n:>4}  {cause}")
    for label, n in harness_counts.items():
        print(f"(Counted as skipped: {n} x {label}.)")
    print("\nTests left out as using Ray internals, by what they use:")
    for reason, n in internals.most_common():
        print(f"  {n:>4}  {reason}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"source": source, "tests": per_test}, f, indent=1)
    if args.keep:
        print(f"\nlogs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
