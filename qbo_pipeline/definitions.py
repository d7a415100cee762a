"""The project's one `Definitions`: everything under `defs/`, found by Dagster's loader.

`[tool.dg]` in pyproject.toml names this module as the code location; `dagster dev`,
`dg dev`, `workspace.yaml` and the CLI's in-process runs all load it.
"""

import gc
from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)

# Everything imported and defined so far lives as long as the process: keep the garbage
# collector from walking it again in every full collection of a run (about 0.5 s of a
# run's CPU, benchmarks/README.md).
gc.freeze()
