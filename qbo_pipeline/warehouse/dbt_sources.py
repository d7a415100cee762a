"""The dbt project's view of the warehouse (analytics/models/staging), written from the
catalog so that one catalog still drives everything: a table or column added there shows
up in dbt's sources, its descriptions and its staging model at the next
`make analytics-sources`, and a test fails until it has.

Staging models keep live rows only, drop the bookkeeping columns (`raw`, `synced_at`,
`deleted_*`, `sync_token`) and name each entity's key after it (`invoice_id`), so marts
join `invoice_id` to `invoice_id`. Lines keep the lines of live transactions only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse import derived
from qbo_pipeline.warehouse.report_tables import REPORT_TABLES
from qbo_pipeline.warehouse.schema import SCHEMA, Table, TableColumn, entity_table, line_table

ANALYTICS = Path(__file__).resolve().parents[2] / "analytics"
STAGING = Path("models") / "staging"
SOURCES_FILE = STAGING / "_qbo__sources.yml"
MODELS_FILE = STAGING / "_qbo__models.yml"
HIDDEN = frozenset({"raw", "synced_at", "deleted_at", "deleted_reason", "sync_token"})
GENERATED = "-- Written by `make analytics-sources` from the catalog; edit the catalog instead.\n"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def staging_name(table: str) -> str:
    return f"stg_qbo__{table}"


def _entity_key(entity: Entity) -> str:
    return f"{snake(entity.name)}_id"


def _shown(columns: Iterable[TableColumn]) -> list[TableColumn]:
    return [c for c in columns if c.name not in HIDDEN]


def _select(columns: Iterable[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ",\n".join(f"    {prefix}{c}" for c in columns)


def entity_model(entity: Entity, table: Table) -> str:
    key = _entity_key(entity)
    names = [f"id as {key}" if c.name == "id" else c.name for c in _shown(table.columns)]
    return (
        f"{GENERATED}select\n{_select(names)}\n"
        f"from {{{{ source('{SCHEMA}', '{table.name}') }}}}\n"
        "where deleted_at is null\n"
    )


def lines_model(entity: Entity, table: Table) -> str:
    parent = entity_table(entity).name
    key = entity.lines.parent_key  # type: ignore[union-attr]
    return (
        f"{GENERATED}select\n{_select((c.name for c in _shown(table.columns)), 'l')}\n"
        f"from {{{{ source('{SCHEMA}', '{table.name}') }}}} as l\n"
        f"join {{{{ source('{SCHEMA}', '{parent}') }}}} as p\n"
        f"  on p.realm_id = l.realm_id and p.id = l.{key}\n"
        "where p.deleted_at is null\n"
    )


def view_model(name: str, columns: Iterable[TableColumn]) -> str:
    return (
        f"{GENERATED}select\n{_select(c.name for c in _shown(columns))}\n"
        f"from {{{{ source('{SCHEMA}', '{name}') }}}}\n"
    )


def _column_docs(columns: Iterable[TableColumn], rename: Mapping[str, str] = {}) -> list[dict]:
    return [{"name": rename.get(c.name, c.name), "description": c.description} for c in columns]


def _keyed(key: Iterable[str]) -> list[dict]:
    return [{"unique_in_realm": {"arguments": {"combination": list(key)}}}]


def render(entities: Iterable[Entity] = ENTITIES) -> dict[Path, str]:
    """Every generated file of analytics/, by path relative to it."""
    sources: list[dict] = []
    models: list[dict] = []
    files: dict[Path, str] = {}

    def add(table: Table, sql: str, key: tuple[str, ...], rename: Mapping[str, str] = {}) -> None:
        sources.append(
            {
                "name": table.name,
                "description": table.description,
                "columns": _column_docs(table.columns),
            }
        )
        name = staging_name(table.name)
        files[STAGING / f"{name}.sql"] = sql
        model: dict = {"name": name, "description": f"Live rows of {SCHEMA}.{table.name}. "}
        model["description"] += table.description
        if key:
            model["data_tests"] = _keyed(key)
        model["columns"] = [
            {**doc, **({"data_tests": ["not_null"]} if doc["name"] in key else {})}
            for doc in _column_docs(_shown(table.columns), rename)
        ]
        models.append(model)

    for entity in entities:
        table = entity_table(entity)
        key = _entity_key(entity)
        add(table, entity_model(entity, table), ("realm_id", key), {"id": key})
        lines = line_table(entity)
        if lines is not None:
            add(lines, lines_model(entity, lines), lines.key)
    for view in derived.VIEWS:
        table = Table(view.name, view.columns, (), (), view.description)
        add(table, view_model(view.name, view.columns), ())
    for table in REPORT_TABLES:
        add(table, view_model(table.name, table.columns), table.key)

    files[SOURCES_FILE] = _yaml(
        {
            "version": 2,
            "sources": [
                {
                    "name": SCHEMA,
                    "schema": SCHEMA,
                    "description": "The tables the QuickBooks sync writes",
                    "tables": sources,
                }
            ],
        }
    )
    files[MODELS_FILE] = _yaml({"version": 2, "models": models})
    return files


def _yaml(document: dict) -> str:
    text = yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    return "# Written by `make analytics-sources` from the catalog; edit the catalog instead.\n" + (
        text
    )


def stale(root: Path = ANALYTICS, entities: Sequence[Entity] = ENTITIES) -> list[Path]:
    """Generated files that differ from what the catalog says, or are missing, or are left
    over from a table the catalog no longer has."""
    wanted = render(entities)
    differ = [p for p, text in wanted.items() if _read(root / p) != text]
    leftover = [
        p.relative_to(root)
        for p in (root / STAGING).glob("stg_qbo__*.sql")
        if p.relative_to(root) not in wanted
    ]
    return sorted(differ + leftover)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def write(root: Path = ANALYTICS, entities: Sequence[Entity] = ENTITIES) -> list[Path]:
    """Bring the generated files in line with the catalog; returns what changed."""
    changed = stale(root, entities)
    wanted = render(entities)
    for path in changed:
        if path in wanted:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(wanted[path])
        else:
            (root / path).unlink()
    return changed


if __name__ == "__main__":
    for changed in write():
        print(f"wrote {changed}")
    sys.exit(0)
