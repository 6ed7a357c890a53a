"""Batch certification studies: study files, jobs, executors, storage and results.

::

    from gridverify.study import ExecutorOptions, load_results, load_study, run_study
    spec = load_study("studies/demo.toml")          # StudyError names line and key
    run = run_study(spec, "reports/demo", ExecutorOptions("local", workers=2))
    results = load_results("reports/demo")          # DataFrames, HTML, plots
"""

from gridverify.study.executors import ExecutorOptions
from gridverify.study.jobs import Job, expand_jobs, run_job
from gridverify.study.results import StudyResults, load_results
from gridverify.study.runner import ProgressEvent, StudyRun, run_study
from gridverify.study.spec import StudySpec, load_study, parse_study

__all__ = [
    "ExecutorOptions",
    "Job",
    "ProgressEvent",
    "StudyResults",
    "StudyRun",
    "StudySpec",
    "expand_jobs",
    "load_results",
    "load_study",
    "parse_study",
    "run_job",
    "run_study",
]
