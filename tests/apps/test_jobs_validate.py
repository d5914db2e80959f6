"""Job files without processes: every problem at its exact line, matrix expansion and excludes,
--set overrides, the TOML line index, the ledger's notion of finished, report helpers, and the
one definition of the video options shared by `ownrun video` and `[app.video]`."""
import inspect
import os
import textwrap

import pytest
from ownrun.apps.jobs import expand, ledger, report, toml_lines, validate
from ownrun.apps.video.config import VideoConfig

VIDEO = """
[app]
kind = "video"
"""


def write(tmp_path, text: str, name: str = "job.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path, text: str, sets=(), name="job.toml") -> list[str]:
    path = write(tmp_path, text, name)
    with pytest.raises(validate.JobFileError) as info:
        validate.load(path, list(sets))
    prefix = str(path)
    return [line.replace(prefix, "job.toml") for line in info.value.problems]


@pytest.fixture
def user_module(tmp_path):
    (tmp_path / "userfn.py").write_text(textwrap.dedent("""
        def work(n, scale=1.0):
            return {"n": n}
    """))
    return tmp_path


BAD_FILES = [
    ("unknown key with a suggestion", VIDEO + "[job]\nrepet = 2\n",
     ["job.toml:5: job.repet: unknown key (did you mean 'repeat'?)"]),
    ("unknown section", VIDEO + "[clusters]\nnodes = 2\n",
     ["job.toml:4: clusters: unknown key (did you mean 'cluster'?)"]),
    ("wrong type", VIDEO + "[job]\nrepeat = \"two\"\n",
     ["job.toml:5: job.repeat: Input should be a valid integer, unable to parse string as an integer"]),
    ("out of range", VIDEO + "[app.video]\nfps = 4\nvideos = 0\n",
     ["job.toml:6: app.video.videos: Input should be greater than or equal to 1"]),
    ("not one of the allowed values", VIDEO + "[job]\nfresh_cluster = true\n[app.video]\nmetadata = \"centralised\"\n",
     ["job.toml:7: app.video.metadata: Input should be 'ownership' or 'centralized'"]),
    ("unknown app option with a suggestion", VIDEO + "[app.video]\ncheckpoint_intervall = 30\n",
     ["job.toml:5: app.video.checkpoint_intervall: unknown key (did you mean 'checkpoint_interval'?)"]),
    ("node failure needs two nodes", VIDEO + "[job]\nfresh_cluster = true\n[[runs]]\nname = \"n\"\nfail = \"node@10s\"\n",
     ["job.toml:8: runs[0].fail: a node failure needs an embedded multi-node cluster: nodes = 2 or more "
      "(node 0 runs the driver, Sinks and owners; the others the Decoders)"]),
    ("a failure on the shared cluster", VIDEO + "[[runs]]\nname = \"d\"\nfail = \"decoder@10s\"\n",
     ["job.toml:6: runs[0].fail: needs a cluster of its own: set [job] fresh_cluster = true (on the job's "
      "shared cluster the workers keep the cluster's settings and a failure would hit the other runs)"]),
    ("cluster options belong to [cluster]", VIDEO + "[app.video]\nnodes = 2\n",
     ["job.toml:5: app.video.nodes: set by the job, not per app: use [cluster] nodes"]),
    ("per-run cluster needs a fresh cluster", VIDEO + "[[runs]]\nname = \"a\"\ncluster.nodes = 2\n",
     ["job.toml:6: runs[0].cluster.nodes: per-run cluster settings need [job] fresh_cluster = true"]),
    ("duplicate run names", VIDEO + "[[runs]]\nname = \"a\"\n[[runs]]\nname = \"a\"\nvideos = 2\n",
     ["job.toml:7: runs[1].name: duplicate run name 'a' (also runs[0])"]),
    ("runs and matrix", VIDEO + "[[runs]]\nname = \"a\"\n[matrix]\nvideos = [1, 2]\n",
     ["job.toml:6: matrix: give either [[runs]] or [matrix], not both"]),
    ("a matrix value out of range", VIDEO + "[matrix]\nvideos = [\n  2,\n  0,\n]\n",
     ["job.toml:7: matrix.videos[1]: Input should be greater than or equal to 1"]),
    ("an exclude of a key the matrix lacks", VIDEO + "[matrix]\nvideos = [1, 2]\n[[matrix.exclude]]\nvidoes = 1\n",
     ["job.toml:7: matrix.exclude[0].vidoes: not a matrix key (matrix keys: videos)"]),
    ("more runs than max_runs", VIDEO + "[job]\nmax_runs = 3\n[matrix]\nvideos = [1, 2]\nfps = [4, 8]\n",
     ["job.toml:6: matrix: expands to 4 runs, more than job.max_runs = 3"]),
    ("more CPUs than the machine", VIDEO + "[cluster]\nnum_cpus = 4096\n",
     [f"job.toml:5: cluster.num_cpus: 4096 CPUs per node, but this machine has {os.cpu_count()}"]),
    ("address with embedded settings", VIDEO + "[cluster]\naddress = \"127.0.0.1:6380\"\nnum_cpus = 1\n",
     ["job.toml:4: cluster: num_cpus describe an embedded cluster: they cannot be given with address "
      "(a running cluster has its own)"]),
    ("unknown kind", "[app]\nkind = \"vidoe\"\n",
     ["job.toml:2: app.kind: unknown kind 'vidoe' (one of: video, python, rl); did you mean 'video'?"]),
    ("rl: unknown algo", "[app]\nkind = \"rl\"\n[app.rl]\nalgo = \"a3c\"\n",
     ["job.toml:4: app.rl.algo: Input should be 'es' or 'ppo'"]),
    ("rl: an ES option under algo = ppo", "[app]\nkind = \"rl\"\n[app.rl]\nalgo = \"ppo\"\nnoise_size = 100000\n",
     ["job.toml:5: app.rl.noise_size: unknown key"]),
    ("rl: a PPO option is checked by PPO's model", "[app]\nkind = \"rl\"\n[app.rl]\nalgo = \"ppo\"\nfragmnt = 64\n",
     ["job.toml:5: app.rl.fragmnt: unknown key (did you mean 'fragment'?)"]),
    ("rl: a failure on the shared cluster", "[app]\nkind = \"rl\"\n[app.rl]\nfail = \"worker@2s\"\n",
     ["job.toml:4: app.rl.fail: needs a cluster of its own: set [job] fresh_cluster = true (on the job's "
      "shared cluster a failure would hit the other runs)"]),
    ("rl: nodes is the cluster's", "[app]\nkind = \"rl\"\n[app.rl]\nnodes = 3\n",
     ["job.toml:4: app.rl.nodes: set by the job, not per app: use [cluster] nodes"]),
    ("a table of another kind", VIDEO + "[app.python]\nentrypoint = \"m:f\"\n",
     ["job.toml:4: app.python: this job's kind is 'video': remove [app.python] or set kind = 'python'"]),
    ("no kind", "[job]\nname = \"x\"\n", ["job.toml:1: (file): missing [app] kind (one of: video, python, rl)"]),
    ("unknown plot", VIDEO + "[report]\nplot = \"cdf\"\n",
     ["job.toml:5: report.plot: no plot 'cdf' for kind 'video' (one of: latency_cdf, none)"]),
    ("unknown summary field", VIDEO + "[report]\nfields = [\"latency_above_floor_s.p50\", \"kept_upp\"]\n",
     ["job.toml:5: report.fields[1]: not a summary field (did you mean 'kept_up'?)"]),
    ("toml syntax", VIDEO + "[job\nname = 1\n", ["job.toml:4: (toml): Expected ']' at the end of a table declaration"]),
]


@pytest.mark.parametrize("text,expected", [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_each_bad_file_is_reported_at_its_line(tmp_path, text, expected):
    assert problems(tmp_path, text) == expected


def test_every_problem_is_reported_at_once_in_line_order(tmp_path):
    found = problems(tmp_path, VIDEO + "[job]\nrepet = 2\non_failure = \"halt\"\n[app.video]\nvideos = 0\n"
                                       "size = \"10x10\"\n")
    assert found == [
        "job.toml:5: job.repet: unknown key (did you mean 'repeat'?)",
        "job.toml:6: job.on_failure: Input should be 'continue' or 'stop'",
        "job.toml:8: app.video.videos: Input should be greater than or equal to 1",
        "job.toml:9: app.video.size: size must be at least 32x32, got 10x10",
    ]


def test_python_entrypoint_must_import_and_its_arguments_must_bind(tmp_path, user_module):
    text = """
        [app]
        kind = "python"
        [app.python]
        entrypoint = "userfn:work"
        kwargs = { scale = 2.0 }
        [[runs]]
        name = "missing-module"
        entrypoint = "nosuchmodule:work"
        [[runs]]
        name = "bad-kwarg"
        kwargs = { n = 1, nn = 2 }
        [[runs]]
        name = "no-n"
    """
    found = problems(tmp_path, text)
    assert found[0] == ("job.toml:6: app.python.kwargs: the arguments do not bind to work(n, scale=1.0): "
                        "missing a required argument: 'n'")
    assert found[1].startswith("job.toml:9: runs[0].entrypoint: cannot load nosuchmodule:work: "
                               "ModuleNotFoundError: No module named 'nosuchmodule'")
    assert found[2] == ("job.toml:12: runs[1].kwargs: the arguments do not bind to work(n, scale=1.0): "
                        "got an unexpected keyword argument 'nn'")
    assert len(found) == 3


def test_a_good_python_job_resolves_each_run_with_the_defaults_merged(tmp_path, user_module):
    path = write(tmp_path, """
        [app]
        kind = "python"
        [app.python]
        entrypoint = "userfn:work"
        kwargs = { n = 1, scale = 2.0 }
        [matrix]
        kwargs.n = [1, 2]
    """)
    job = validate.load(path)
    assert [r.name for r in job.runs] == ["n=1", "n=2"]
    assert [r.options["kwargs"] for r in job.runs] == [{"n": 1, "scale": 2.0}, {"n": 2, "scale": 2.0}]
    assert job.runs[0].config_hash != job.runs[1].config_hash


# ---- matrix ------------------------------------------------------------------------------------
def test_matrix_is_the_cartesian_product_in_file_order_minus_excludes():
    specs, found = expand.from_matrix({"metadata": ["ownership", "centralized"], "videos": [2, 4],
                                       "fps": [8], "exclude": [{"metadata": "centralized", "videos": 4}]})
    assert found == []
    assert [s.name for s in specs] == ["metadata=ownership,videos=2", "metadata=ownership,videos=4",
                                       "metadata=centralized,videos=2"]
    assert specs[2].overrides == {("metadata",): "centralized", ("videos",): 2, ("fps",): 8}
    assert specs[2].sources[("videos",)] == ("matrix", "videos", 0)


def test_nested_matrix_keys_and_an_exclude_that_matches_nothing():
    specs, found = expand.from_matrix({"kwargs": {"n": [1, 2]}, "exclude": [{"kwargs": {"n": 3}}]})
    assert [s.name for s in specs] == ["n=1", "n=2"]
    assert found == [(("matrix", "exclude", 0), "excludes no combination of the matrix")]


def test_repeat_names_each_copy():
    specs = expand.repeated([expand.RunSpec("a", {})], 2)
    assert [(s.name, s.repeat) for s in specs] == [("a-r1", 1), ("a-r2", 2)]


def test_matrix_entries_must_be_lists():
    _, found = expand.from_matrix({"videos": 3})
    assert found[0] == (("matrix", "videos"), "a matrix entry must be a non-empty list of values to try")


# ---- --set ------------------------------------------------------------------------------------
def test_set_overrides_defaults_and_one_run_by_name(tmp_path):
    path = write(tmp_path, VIDEO + "[job]\nfresh_cluster = true\n[app.video]\nvideos = 60\n"
                                   "[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\nfail = \"decoder@10s\"\n")
    job = validate.load(path, ["app.video.videos=2", "app.video.size=160x120", "runs.b.fail=decoder@2s",
                               "job.repeat=2"])
    assert [r.name for r in job.runs] == ["a-r1", "a-r2", "b-r1", "b-r2"]
    assert {r.options["videos"] for r in job.runs} == {2}
    assert job.runs[0].options["size"] == "160x120"
    assert job.runs[2].options["fail"] == "decoder@2s"


def test_a_bad_set_value_is_reported_as_the_set_not_a_line(tmp_path):
    found = problems(tmp_path, VIDEO + "[[runs]]\nname = \"a\"\n",
                     sets=["app.video.videos=0", "runs.zz.videos=1"])
    assert found == ["job.toml: --set runs.zz.videos=1: runs has no entry named 'zz' (entries: a)",
                     "job.toml: --set app.video.videos=0: app.video.videos: Input should be greater than "
                     "or equal to 1"]


def test_set_values_are_read_as_toml_else_as_text():
    assert validate.parse_value("2") == 2
    assert validate.parse_value("[1, 2]") == [1, 2]
    assert validate.parse_value("true") is True
    assert validate.parse_value("centralized") == "centralized"


# ---- the line index ---------------------------------------------------------------------------
def test_line_index_knows_tables_arrays_of_tables_inline_tables_and_array_elements():
    text = textwrap.dedent('''
        title = "a [not a table]"   # comment with [brackets]
        [job]
        name = """multi
        line [x]"""
        [[runs]]
        name = "a"
        [[runs]]
        name = "b"
        kwargs = { n = 1, m = { k = 2 } }
        [runs.cluster]
        nodes = 2
        [matrix]
        videos = [
          1,  # one
          2,
        ]
        "quoted.key" = 1
    ''')
    lines = toml_lines.index(text)
    assert lines[("title",)] == 2
    assert lines[("job", "name")] == 4
    assert lines[("runs", 0, "name")] == 7
    assert lines[("runs", 1)] == 8
    assert lines[("runs", 1, "kwargs", "m", "k")] == 10
    assert lines[("runs", 1, "cluster", "nodes")] == 12
    assert lines[("matrix", "videos", 1)] == 16
    assert lines[("matrix", "quoted.key")] == 18
    assert toml_lines.line_of(lines, ("runs", 1, "kwargs", "n", "deeper")) == 10
    assert toml_lines.dotted(("runs", 1, "kwargs", "n")) == "runs[1].kwargs.n"


# ---- ledger and reports -----------------------------------------------------------------------
def test_finished_runs_are_the_latest_ok_ends_and_the_skipped(tmp_path):
    book = ledger.Ledger(tmp_path)
    book.write("run_end", run="a", config_hash="h1", status="ok")
    book.write("run_end", run="b", config_hash="h2", status="failed")
    book.write("run_end", run="c", config_hash="h3", status="ok")
    book.write("run_end", run="c", config_hash="h3", status="interrupted")
    book.write("run_skipped", run="d", config_hash="h4")
    with open(book.path, "a") as f:
        f.write('{"torn": ')
    assert ledger.finished(book.path) == {("a", "h1"), ("d", "h4")}


def test_summary_fields_are_dotted_paths_and_columns_their_short_suffixes():
    summary = {"latency": {"p50": 0.1}, "failures": [{"spike": 2.0}]}
    assert report.value_at(summary, "latency.p50") == 0.1
    assert report.value_at(summary, "failures.0.spike") == 2.0
    assert report.value_at(summary, "failures.1.spike") is None
    assert report.headers(["a.p50", "b.p50", "c.max"]) == ["a.p50", "b.p50", "max"]


# ---- one definition of the video options -----------------------------------------------------
def test_ownrun_video_flags_are_the_fields_of_video_config():
    from ownrun.cli import video

    params = inspect.signature(video.video).parameters
    assert set(VideoConfig.model_fields) <= set(params)
    assert params["videos"].default == VideoConfig.model_fields["videos"].default


def test_video_config_reads_sizes_and_checks_failures():
    assert VideoConfig(size="160x120").size == (160, 120)
    assert VideoConfig(size="160x120").model_dump(mode="json")["size"] == "160x120"
    assert VideoConfig(fail="NODE@3", nodes=2).fail == "node@3s"
    with pytest.raises(ValueError, match="node failure"):
        VideoConfig(fail="node@3s")


def test_rl_runs_are_checked_by_the_model_their_algo_picks(tmp_path):
    path = write(tmp_path, """
        [cluster]
        nodes = 3
        [app]
        kind = "rl"
        [app.rl]
        env = "Pendulum-v1"
        [matrix]
        algo = ["es", "ppo"]
    """)
    job = validate.load(path)
    es, ppo = (run.options for run in job.runs)
    assert es["algo"] == "es" and "noise_size" in es and "fragment" not in es
    assert ppo["algo"] == "ppo" and ppo["gamma"] == 0.95 and ppo["envs_per_worker"] == 8  # PPO's tuned values
    assert "nodes" not in es and job.runs[0].cluster["nodes"] == 3  # the job's, set on each run
    assert job.plot == "learning_curves"


def test_a_matrix_can_say_no_failure_with_none(tmp_path):
    path = write(tmp_path, """
        [job]
        fresh_cluster = true
        [app]
        kind = "rl"
        [matrix]
        fail = ["none", "worker@2s"]
    """)
    assert [run.options["fail"] for run in validate.load(path).runs] == [None, "worker@2s"]
