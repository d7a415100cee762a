"""The project's one `Definitions`: everything under `defs/`, found by Dagster's loader.

`[tool.dg]` in pyproject.toml names this module as the code location; `dagster dev`,
`dg dev`, `workspace.yaml` and the CLI's in-process runs all load it.
"""

import dagster as dg

from qbo_pipeline import defs as defs_folder

defs = dg.components.load_defs(defs_root=defs_folder)
