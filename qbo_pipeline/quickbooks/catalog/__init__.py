"""The entity catalog: the one description of each QBO entity that everything reads.

The emulator serves what is here (filterable fields, name-list behaviour), the client
builds queries from it, the normaliser flattens entities with its column maps, the
warehouse creates tables from them and the Dagster assets are generated from it.
Adding an entity is a new `Entity` entry in the module of its area (`sales`, `purchases`,
`accounting`, `lists`, `company`), listed in ENTITIES; `model` holds the shape every entry has.
"""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.accounting import (
    ACCOUNTING,
    BUDGET,
    DEPOSIT,
    JOURNAL_ENTRY,
    TIME_ACTIVITY,
    TRANSFER,
)
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
from qbo_pipeline.quickbooks.catalog.purchases import (
    BILL,
    BILL_PAYMENT,
    PURCHASE,
    PURCHASE_ORDER,
    PURCHASES,
    VENDOR_CREDIT,
)
from qbo_pipeline.quickbooks.catalog.sales import (
    CREDIT_MEMO,
    CUSTOMER,
    ESTIMATE,
    INVOICE,
    INVOICE_LINES,
    PAYMENT,
    REFUND_RECEIPT,
    SALES,
    SALES_RECEIPT,
)

__all__ = [
    "ACCOUNT",
    "BILL",
    "BILL_PAYMENT",
    "BUDGET",
    "CLASS",
    "COMPANY_INFO",
    "CREDIT_MEMO",
    "CUSTOMER",
    "DEPARTMENT",
    "DEPOSIT",
    "DETAIL",
    "EMPLOYEE",
    "ENTITIES",
    "ESTIMATE",
    "INVOICE",
    "INVOICE_LINES",
    "ITEM",
    "JOURNAL_ENTRY",
    "NAME_LISTS",
    "PAYMENT",
    "PAYMENT_METHOD",
    "PREFERENCES",
    "PURCHASE",
    "PURCHASE_ORDER",
    "REFUND_RECEIPT",
    "SALES_RECEIPT",
    "TAX_AGENCY",
    "TAX_CODE",
    "TAX_RATE",
    "TERM",
    "TIME_ACTIVITY",
    "TRANSACTIONS",
    "TRANSFER",
    "VENDOR",
    "VENDOR_CREDIT",
    "Column",
    "ColumnType",
    "Entity",
    "Kind",
    "LineTable",
    "entity",
]

# The largest first: a run syncs a few entities at a time, in this order.
TRANSACTIONS: tuple[Entity, ...] = (*SALES, *PURCHASES, *ACCOUNTING)
ENTITIES: tuple[Entity, ...] = (
    CUSTOMER,
    INVOICE,
    *TRANSACTIONS,
    *NAME_LISTS,
    COMPANY_INFO,
    PREFERENCES,
)
_BY_NAME = {entity.name: entity for entity in ENTITIES}


def entity(name: str) -> Entity:
    """The catalog entry for a QBO entity name, matched as QBO does (case-insensitively)."""
    for candidate in ENTITIES:
        if candidate.name.lower() == name.lower():
            return candidate
    known = ", ".join(_BY_NAME)
    raise KeyError(f"unknown QuickBooks entity {name!r}; the catalog knows {known}")
