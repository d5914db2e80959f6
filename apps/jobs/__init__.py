"""Config-driven batch jobs: `ownrun run JOB.toml` (issue 10).

Modules: schema (the app-independent sections as pydantic models), kinds/ (the registry of
app kinds: video, python, rl), toml_lines (dotted path -> line of the TOML text), expand
([[runs]] / [matrix] / repeat -> runs), validate (file + --set -> a checked Job, or every
problem at once), ledger (ledger.jsonl: what started and finished), runner (the run
directory, the cluster, one driver process per run, timeouts, Ctrl-C), driver (the entry
point of a run's process) and report (summary.csv/.md, tables, overlay plots, compare).
Imports nothing heavy: the engine loads in the runner and the drivers only.
"""
