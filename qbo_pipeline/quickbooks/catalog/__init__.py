"""The entity catalog: the one description of each QBO entity that everything reads.

The emulator serves what is here (filterable fields, name-list behaviour), the client
builds queries from it, the normaliser flattens entities with its column maps, the
warehouse creates tables from them and the Dagster assets are generated from it.
Adding an entity is a new `Entity` entry in the module of its area (`sales`, `lists`,
`company`), listed in ENTITIES; `model` holds the shape every entry has.
"""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.company import COMPANY_INFO, PREFERENCES
from qbo_pipeline.quickbooks.catalog.lists import (
    ACCOUNT,
    CLASS,
    DEPARTMENT,
    EMPLOYEE,
    ITEM,
    NAME_LISTS,
    PAYMENT_METHOD,
    TAX_AGENCY,
    TAX_CODE,
    TAX_RATE,
    TERM,
    VENDOR,
)
from qbo_pipeline.quickbooks.catalog.model import (
    DETAIL,
    Column,
    ColumnType,
    Entity,
    Kind,
    LineTable,
)
from qbo_pipeline.quickbooks.catalog.sales import CUSTOMER, INVOICE, INVOICE_LINES

__all__ = [
    "ACCOUNT",
    "CLASS",
    "COMPANY_INFO",
    "CUSTOMER",
    "DEPARTMENT",
    "DETAIL",
    "EMPLOYEE",
    "ENTITIES",
    "INVOICE",
    "INVOICE_LINES",
    "ITEM",
    "NAME_LISTS",
    "PAYMENT_METHOD",
    "PREFERENCES",
    "TAX_AGENCY",
    "TAX_CODE",
    "TAX_RATE",
    "TERM",
    "VENDOR",
    "Column",
    "ColumnType",
    "Entity",
    "Kind",
    "LineTable",
    "entity",
]

# The largest first: a run syncs a few entities at a time, in this order.
ENTITIES: tuple[Entity, ...] = (CUSTOMER, INVOICE, *NAME_LISTS, COMPANY_INFO, PREFERENCES)
_BY_NAME = {entity.name: entity for entity in ENTITIES}


def entity(name: str) -> Entity:
    """The catalog entry for a QBO entity name, matched as QBO does (case-insensitively)."""
    for candidate in ENTITIES:
        if candidate.name.lower() == name.lower():
            return candidate
    known = ", ".join(_BY_NAME)
    raise KeyError(f"unknown QuickBooks entity {name!r}; the catalog knows {known}")
