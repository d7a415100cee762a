"""The project's one `Definitions`: everything under `defs/`, found by Dagster's loader.

`[tool.dg]` in pyproject.toml names this module as the code location; `dagster dev`,
`dg dev`, `workspace.yaml` and the CLI's in-process runs all load it.
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
