"""One QBO company in memory: its CompanyInfo, its entities, their query index, writes
and deletions.

Each stored entity is indexed by its filterable properties (see query.project) and by
(LastUpdatedTime, Id), and kept as the JSON fragment it is served as. Generated entities
keep only the index and the fragment; written and replayed entities also keep their body.

Every write of a new version (and every deletion) is reported to `on_change` when it is
set, which is how webhook deliveries learn of changes whoever made them: the accounting
API, churn, the admin API, or a side effect such as a customer's balance moving.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from qbo_pipeline.emulator import query
from qbo_pipeline.emulator.amounts import ZERO, cents, json_amount, recompute_invoice, to_decimal
from qbo_pipeline.emulator.faults import ServiceFault, not_found, stale_object
from qbo_pipeline.emulator.generator import CompanyGenerator
from qbo_pipeline.emulator.lists import ListGenerator
from qbo_pipeline.emulator.transactions import TransactionGenerator, Volumes
from qbo_pipeline.quickbooks.catalog import (
    COMPANY_INFO,
    CREDIT_MEMO,
    CUSTOMER,
    ENTITIES,
    INVOICE,
    PAYMENT,
    PREFERENCES,
    VENDOR,
    Entity,
)
from qbo_pipeline.quickbooks.timestamps import PACIFIC, format_qbo, parse_instant

# QBO makes these itself: one CompanyInfo and Preferences per company; tax codes and rates
# through its tax service, not the entity's endpoint.
NOT_CREATABLE = frozenset({"CompanyInfo", "Preferences", "TaxCode", "TaxRate"})
# Airbyte stream names in the replay format, and the entity each holds: its table's name.
REPLAY_STREAMS = {entity.table: entity for entity in ENTITIES}
_QUERY_CACHE_SIZE = 16
# The sandbox company the replay fixture was recorded from; its name and address are on
# the purchase orders recorded with it, its stamps those of its oldest records.
SANDBOX_COMPANY_INFO: dict[str, Any] = {
    "Id": "1",
    "SyncToken": "0",
    "domain": "QBO",
    "sparse": False,
    "CompanyName": "Craig's Design and Landscaping Services",
    "LegalName": "Craig's Design and Landscaping Services",
    "Country": "US",
    "CompanyAddr": {
        "Id": "1",
        "Line1": "123 Sierra Way",
        "City": "San Pablo",
        "Country": "US",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "87999",
    },
    "MetaData": {
        "CreateTime": "2023-02-10T14:41:49-08:00",
        "LastUpdatedTime": "2023-02-10T14:41:49-08:00",
    },
}


@dataclass(frozen=True)
class DeletionRecord:
    entity: str
    id: str
    deleted_at: datetime


# Operations as CloudEvents spells them (past tense); webhooks.py maps them to the legacy verbs.
CREATED, UPDATED, DELETED, MERGED, VOIDED = "created", "updated", "deleted", "merged", "voided"


@dataclass(frozen=True)
class Change:
    """One new version of an entity (or its deletion), as a webhook event reports it.

    `stamp` is the new MetaData.LastUpdatedTime, or the deletion's instant at QBO's
    one-second precision; `deleted_id` is the customer a merge absorbed.
    """

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    stamp: datetime
    deleted_id: str | None = None


ChangeHook = Callable[[Change], None]


class EntityIndex:
    """The entities of one type, by numeric Id, with the indexes serving needs.

    - `timeline`: (LastUpdatedTime, Id) in order, so the sync's time-range pages are a
      bisect and a slice (rows without the stamp are kept in `untimed`); it is sorted
      lazily after a bulk load and kept sorted by each write after that.
    - `fragments`: each entity's JSON as served, so a page is a join of bytes; written
      entities also keep their body, generated ones are read back from the fragment.
    - `names`: Ids by DisplayName, for QBO's unique-name rule without a scan.
    """

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.schema = query.schema_for(entity)
        self.rows: dict[int, query.Projection] = {}
        self.bodies: dict[int, dict[str, Any]] = {}
        self.fragments: dict[int, bytes] = {}
        self.timeline: list[tuple[float, int]] = []
        self.untimed: set[int] = set()
        self._timeline_sorted = False
        self._updated = self.schema.position(query.LAST_UPDATED)
        names = [p.name for p in self.schema.properties]
        self._name = names.index("DisplayName") if "DisplayName" in names else None
        self.names: dict[str, set[int]] = {}
        self.next_id = 1
        self.version = 0  # bumped on every change; keys the query cache

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, entity_id: int, body: dict[str, Any]) -> None:
        self.bodies[entity_id] = body
        self.index(entity_id, query.project(self.schema, body))

    def load(self, entity_id: int, body: dict[str, Any]) -> None:
        """Hold a generated entity as its fragment only (a third of the dict's memory)."""
        self.index(entity_id, query.project(self.schema, body))
        self.fragments[entity_id] = encode(body)

    def index(self, entity_id: int, projection: query.Projection) -> None:
        old = self.rows.get(entity_id)
        if old is not None:
            self._unlink(entity_id, old)
        self.rows[entity_id] = projection
        self._link(entity_id, projection)
        self.fragments.pop(entity_id, None)
        self.next_id = max(self.next_id, entity_id + 1)
        self.version += 1

    def remove(self, entity_id: int) -> None:
        old = self.rows.pop(entity_id, None)
        if old is not None:
            self._unlink(entity_id, old)
        self.bodies.pop(entity_id, None)
        self.fragments.pop(entity_id, None)
        self.version += 1

    def _link(self, entity_id: int, projection: query.Projection) -> None:
        stamp = projection[self._updated]
        if stamp is None:
            self.untimed.add(entity_id)
        elif self._timeline_sorted:
            bisect.insort(self.timeline, (stamp, entity_id))
        else:
            self.timeline.append((stamp, entity_id))
        if self._name is not None and projection[self._name] is not None:
            self.names.setdefault(projection[self._name], set()).add(entity_id)

    def _unlink(self, entity_id: int, projection: query.Projection) -> None:
        stamp = projection[self._updated]
        if stamp is None:
            self.untimed.discard(entity_id)
        else:
            timeline = self.ordered()
            position = bisect.bisect_left(timeline, (stamp, entity_id))
            if position < len(timeline) and timeline[position] == (stamp, entity_id):
                del timeline[position]
        if self._name is not None:
            self.names.get(projection[self._name], set()).discard(entity_id)

    def ordered(self) -> list[tuple[float, int]]:
        if not self._timeline_sorted:
            self.timeline.sort()
            self._timeline_sorted = True
        return self.timeline

    def get(self, entity_id: int) -> dict[str, Any] | None:
        """The entity as served; callers must copy before changing it."""
        if entity_id not in self.rows:
            return None
        body = self.bodies.get(entity_id)
        if body is None:
            body = json.loads(self.fragments[entity_id])
        return body

    def fragment(self, entity_id: int) -> bytes:
        """The entity's JSON, encoded once per version of the entity."""
        fragment = self.fragments.get(entity_id)
        if fragment is None:
            fragment = self.fragments[entity_id] = encode(self.bodies[entity_id])
        return fragment

    def all(self) -> Iterator[dict[str, Any]]:
        for entity_id in sorted(self.rows):
            body = self.get(entity_id)
            if body is not None:
                yield body

    # The time index -----------------------------------------------------------------------

    def can_walk(self, keyset: query.Keyset) -> bool:
        """Rows without a stamp sort first in a scan; only bounds exclude them for sure."""
        return keyset.bounded or not self.untimed

    def span(self, keyset: query.Keyset) -> tuple[int, int]:
        """Positions [start, end) of the timeline inside the keyset's bounds."""
        timeline = self.ordered()
        start, end = 0, len(timeline)
        if keyset.low is not None:
            if keyset.low_inclusive:
                start = bisect.bisect_left(timeline, (keyset.low, -math.inf))
            else:
                start = bisect.bisect_right(timeline, (keyset.low, math.inf))
        if keyset.high is not None:
            if keyset.high_inclusive:
                end = bisect.bisect_right(timeline, (keyset.high, math.inf))
            else:
                end = bisect.bisect_left(timeline, (keyset.high, -math.inf))
        return start, max(start, end)

    def walk(self, keyset: query.Keyset, skip: int, limit: int) -> list[int]:
        """Ids of the matching rows `skip` onwards, at most `limit`, in timeline order."""
        start, end = self.span(keyset)
        timeline = self.timeline
        if not keyset.residual:
            first = start + skip
            return [entity_id for _, entity_id in timeline[first : min(end, first + limit)]]
        found: list[int] = []
        for position in range(start, end):
            entity_id = timeline[position][1]
            if self._passes(entity_id, keyset.residual):
                if skip:
                    skip -= 1
                    continue
                found.append(entity_id)
                if len(found) >= limit:
                    break
        return found

    def count(self, keyset: query.Keyset) -> int:
        start, end = self.span(keyset)
        if not keyset.residual:
            return end - start
        timeline = self.timeline
        return sum(
            1
            for position in range(start, end)
            if self._passes(timeline[position][1], keyset.residual)
        )

    def _passes(self, entity_id: int, tests: tuple[query.Predicate, ...]) -> bool:
        row = self.rows[entity_id]
        return all(test(row) for test in tests)

    def changed_since(self, instant: float, limit: int) -> list[tuple[float, int]]:
        """The oldest `limit` (LastUpdatedTime, Id) at or after `instant`: CDC's reading."""
        timeline = self.ordered()
        start = bisect.bisect_left(timeline, (instant, -math.inf))
        return timeline[start : start + limit]


_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode(body: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it (compact, UTF-8), so fragments and bodies
    agree; orjson writes the same bytes for QBO's values at a fifth of the cost, and the
    standard encoder takes what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):
        return _encoder.encode(body).encode("utf-8")


class Company:
    """A realm's data and the QBO rules for changing it."""

    def __init__(self, realm_id: str, info: dict[str, Any], *, multi_currency: bool = True) -> None:
        self.realm_id = realm_id
        self.tables = {entity.name: EntityIndex(entity) for entity in ENTITIES}
        # The company's own two rows, served by query and by /companyinfo alike.
        self.tables[COMPANY_INFO.name].put(1, info)
        self.tables[PREFERENCES.name].put(1, preferences(info, multi_currency=multi_currency))
        self.deletions: list[DeletionRecord] = []
        self._query_cache: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()
        # Told of every write when webhooks are on; None costs nothing (EmulatorState wires it).
        self.on_change: ChangeHook | None = None
        self._folded: frozenset[tuple[str, str]] = frozenset()
        # What reports.py computed from the tables, keyed by their versions.
        self.report_cache: dict[str, Any] = {}

    # Building -------------------------------------------------------------------------------

    def _ordered(self) -> Company:
        """Sort each bulk load's timeline now: sorted in the first query instead, 200,000
        invoices hold the event loop for a quarter of a second, and every request arriving
        meanwhile is counted late against the limits, as if sent in a burst."""
        for table in self.tables.values():
            table.ordered()
        return self

    @classmethod
    def generated(
        cls, realm_id: str, seed: int, customers: int, invoices: int, name: str | None = None
    ) -> Company:
        generator = CompanyGenerator(seed, customers, invoices)
        company = cls(realm_id, generator.company_info(name))
        lists = ListGenerator(seed, customers)
        transactions = TransactionGenerator(
            seed, customers, Volumes(invoices), lists.vendors, lists.employees, generator.card
        )
        invoice_table = company.tables[INVOICE.name]
        balances = [ZERO] * (customers + 1)
        generator.hold_cards()
        for number in range(1, invoices + 1):
            body = generator.invoice(number)
            invoice_table.load(number, body)
            balances[int(body["CustomerRef"]["value"])] += to_decimal(body["Balance"])
            if (payment := transactions.payment(body)) is not None:
                company.tables[PAYMENT.name].load(payment[1], payment[2])
        for entity_name, number, body in transactions.rows():
            company.tables[entity_name].load(number, body)
        generator.drop_cards()
        for customer, credit in transactions.balances.customers.items():
            balances[customer] += credit
        with_jobs = list(balances)
        for number in range(1, customers + 1):
            parent = generator.traits(number).parent
            if parent is not None:
                with_jobs[parent] += balances[number]
        customer_table = company.tables[CUSTOMER.name]
        for number in range(1, customers + 1):
            customer_table.load(
                number, generator.customer(number, balances[number], with_jobs[number])
            )
        owed = transactions.balances.vendors
        for entity_name, number, body in lists.lists():
            if entity_name == VENDOR.name:
                body["Balance"] = json_amount(owed.get(number, ZERO))
            company.tables[entity_name].load(number, body)
        return company._ordered()

    @classmethod
    def replayed(cls, realm_id: str, path: Path) -> Company:
        """Entities from Airbyte record lines, served exactly as recorded."""
        company = cls(realm_id, copy.deepcopy(SANDBOX_COMPANY_INFO), multi_currency=False)
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                entity = REPLAY_STREAMS.get(record.get("stream"))
                if entity is None:
                    continue
                body = dict(record["data"])
                body.pop("airbyte_cursor", None)
                try:
                    entity_id = int(body["Id"])
                except (KeyError, ValueError):
                    raise ValueError(
                        f"{path}:{number}: {entity.name} without a numeric Id"
                    ) from None
                company.tables[entity.name].put(entity_id, body)
        return company._ordered()

    # Reading --------------------------------------------------------------------------------

    @property
    def info(self) -> dict[str, Any]:
        """The CompanyInfo entity, served as it is."""
        info = self.tables[COMPANY_INFO.name].get(1)
        assert info is not None  # put by __init__; CompanyInfo cannot be deleted
        return info

    @property
    def name(self) -> str:
        return self.info["CompanyName"]

    def get(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        try:
            number = int(entity_id)
        except ValueError:
            return None
        return self.tables[entity].get(number)

    def select(self, plan: query.Plan) -> list[int]:
        """The ids a query matches, in order; cached so paging a large table stays cheap."""
        table = self.tables[plan.schema.entity.name]
        key = (plan.selection_key, table.version)
        ids = self._query_cache.get(key)
        if ids is None:
            ids = query.select(plan, table.rows.items())
            self._query_cache[key] = ids
            while len(self._query_cache) > _QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        else:
            self._query_cache.move_to_end(key)
        return ids

    def page(self, plan: query.Plan) -> list[int]:
        """The ids of the plan's page: from the time index when it can answer, else a scan."""
        table = self.tables[plan.schema.entity.name]
        keyset = plan.keyset
        if keyset is not None and table.can_walk(keyset):
            return table.walk(keyset, plan.start_position - 1, plan.max_results)
        return list(query.page(plan, self.select(plan)))

    def count(self, plan: query.Plan) -> int:
        table = self.tables[plan.schema.entity.name]
        keyset = plan.keyset
        if keyset is not None and table.can_walk(keyset):
            return table.count(keyset)
        return len(self.select(plan))

    def counts(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.tables.items()}

    # Writing --------------------------------------------------------------------------------

    def save(self, entity: Entity, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Create (no Id) or update (Id and SyncToken; `sparse` merges) as QBO does."""
        if not isinstance(payload, dict):
            raise _bad_request("Request has invalid or unsupported property")
        if payload.get("Id") in (None, ""):
            return self._create(entity, payload, now)
        return self._update(entity, payload, now)

    def delete(self, entity: Entity, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Hard-delete a transaction; name-list entities can only be made inactive."""
        if entity.is_name_list:
            raise ServiceFault(
                "500",
                "Unsupported Operation",
                f"Operation Delete is not supported for {entity.name}; "
                "set Active to false instead.",
            )
        existing = self._existing(entity, payload)
        table = self.tables[entity.name]
        table.remove(int(existing["Id"]))
        self.deletions.append(DeletionRecord(entity.name, existing["Id"], now))
        self._report(entity.name, existing["Id"], DELETED, now.replace(microsecond=0))
        if entity is INVOICE:
            delta = -to_decimal(existing.get("Balance"))
            self._adjust_customer_balance(existing["CustomerRef"]["value"], delta, now)
        if entity is PAYMENT:  # what it paid is owed again
            for invoice_id, amount in _linked_invoices(existing):
                if self.get(INVOICE.name, invoice_id) is not None:
                    self._apply_payment(invoice_id, existing["Id"], -amount, now)
        return {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}

    def _existing(self, entity: Entity, payload: dict[str, Any]) -> dict[str, Any]:
        entity_id = str(payload.get("Id", ""))
        existing = self.get(entity.name, entity_id)
        if existing is None:
            raise not_found(entity.name, entity_id)
        if str(payload.get("SyncToken")) != existing["SyncToken"]:
            raise stale_object()
        return existing

    def _create(self, entity: Entity, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        if entity.name in NOT_CREATABLE:
            raise _unsupported("Create", entity.name)
        table = self.tables[entity.name]
        body = copy.deepcopy(payload)
        for key in ("Id", "SyncToken", "MetaData", "sparse", "domain"):
            body.pop(key, None)
        entity_id = table.next_id
        stamp = format_qbo(now)
        header = {
            "Id": str(entity_id),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
        }
        body = {**header, **body}
        if entity is CUSTOMER:
            self._prepare_customer(body, None)
            self._store(entity, body, CREATED)
        elif entity is INVOICE:
            self._prepare_invoice(body, None, now)
            self._store(entity, body, CREATED)
            self._adjust_customer_balance(
                body["CustomerRef"]["value"], to_decimal(body["Balance"]), now
            )
        elif entity is PAYMENT:
            applied = self._payment_applications(body)
            self._store(entity, body, CREATED)
            for invoice_id, amount in applied:
                self._apply_payment(invoice_id, body["Id"], amount, now)
        else:
            if entity.hides_inactive:
                body.setdefault("Active", True)
            self._store(entity, body, CREATED)
        return body

    def _update(self, entity: Entity, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        existing = self._existing(entity, payload)
        changes = copy.deepcopy(payload)
        sparse = bool(changes.pop("sparse", False))
        if sparse:
            body = copy.deepcopy(existing)
            body.update(changes)
        else:
            body = changes
        body["Id"] = existing["Id"]
        body["domain"] = "QBO"
        body["sparse"] = False
        _next_version(existing, body, now)
        if entity is CUSTOMER:
            self._prepare_customer(body, existing)
        elif entity is INVOICE:
            self._prepare_invoice(body, existing, now)
        self._store(entity, body, UPDATED)
        if entity is INVOICE:
            self._move_invoice_balance(existing, body, now)
        return body

    def _prepare_customer(self, body: dict[str, Any], existing: dict[str, Any] | None) -> None:
        if not body.get("DisplayName"):
            parts = [body.get("GivenName"), body.get("FamilyName")]
            body["DisplayName"] = " ".join(p for p in parts if p) or body.get("CompanyName")
        name = body.get("DisplayName")
        if not name:
            raise ServiceFault(
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter DisplayName is missing in the request",
                element="DisplayName",
            )
        self._check_unique_name(name, existing)
        parent_ref = body.get("ParentRef") or {}
        parent = self.get(CUSTOMER.name, str(parent_ref.get("value", ""))) if parent_ref else None
        if parent_ref and parent is None:
            raise _invalid_reference("ParentRef", parent_ref.get("value"))
        body["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{name}" if parent else name
        body.setdefault("PrintOnCheckName", name)
        body.setdefault("Active", True)
        body["Job"] = parent is not None
        body.setdefault("BillWithParent", False)
        body.setdefault("Taxable", False)
        body.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        # Balances belong to the invoices, whatever the client sent.
        for key in ("Balance", "BalanceWithJobs"):
            body[key] = existing.get(key, 0) if existing else 0

    def _check_unique_name(self, name: str, existing: dict[str, Any] | None) -> None:
        own_id = int(existing["Id"]) if existing else None
        for entity_id in self.tables[CUSTOMER.name].names.get(name, ()):
            if entity_id != own_id:
                raise ServiceFault(
                    "6240",
                    "Duplicate Name Exists Error",
                    "The name supplied already exists. : Another customer is already using "
                    "this name. Please use a different name.",
                )

    def _prepare_invoice(
        self, body: dict[str, Any], existing: dict[str, Any] | None, now: datetime
    ) -> None:
        reference = body.get("CustomerRef") or {}
        customer = self.get(CUSTOMER.name, str(reference.get("value", "")))
        if customer is None:
            raise _invalid_reference("CustomerRef", reference.get("value"))
        if not body.get("Line"):
            raise ServiceFault(
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter Line is missing in the request",
                element="Line",
            )
        body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        body.setdefault("CurrencyRef", dict(customer.get("CurrencyRef") or {}))
        body.setdefault("TxnDate", now.astimezone(PACIFIC).date().isoformat())
        body.setdefault("DocNumber", str(1000 + int(body["Id"])))
        body.setdefault("LinkedTxn", existing.get("LinkedTxn", []) if existing else [])
        _number_sales_lines(body["Line"])
        paid = None
        if existing is not None:
            paid = to_decimal(existing.get("TotalAmt")) - to_decimal(existing.get("Balance"))
            paid -= to_decimal(existing.get("Deposit"))
        recompute_invoice(body, paid=paid)

    def _payment_applications(self, payment: dict[str, Any]) -> list[tuple[str, Decimal]]:
        """The (invoice, amount) a new payment applies, checked as QBO checks them: the
        invoices exist, and no line pays more than an invoice's open balance."""
        applied = _linked_invoices(payment)
        for invoice_id, amount in applied:
            invoice = self.get(INVOICE.name, invoice_id)
            if invoice is None:
                raise _invalid_reference("LinkedTxn", invoice_id)
            if amount > to_decimal(invoice.get("Balance")):
                raise _bad_request(
                    f"The payment applies {amount} to invoice {invoice_id}, more than its "
                    f"open balance of {invoice.get('Balance')}"
                )
        return applied

    def _apply_payment(
        self, invoice_id: str, payment_id: str, amount: Decimal, now: datetime
    ) -> None:
        """Take `amount` off an invoice's balance (a negative one puts it back, when the
        payment is deleted), linking or unlinking the payment, as QBO updates the invoice."""
        existing = self._found(INVOICE, invoice_id)
        body = copy.deepcopy(existing)
        body["Balance"] = json_amount(to_decimal(existing.get("Balance")) - amount)
        links = [
            link
            for link in body.get("LinkedTxn", [])
            if (link.get("TxnType"), link.get("TxnId")) != ("Payment", payment_id)
        ]
        if amount > 0:
            links.append({"TxnId": payment_id, "TxnType": "Payment"})
        body["LinkedTxn"] = links
        _next_version(existing, body, now)
        self._store(INVOICE, body, UPDATED)
        self._move_invoice_balance(existing, body, now)

    def _move_invoice_balance(
        self, before: dict[str, Any], after: dict[str, Any], now: datetime
    ) -> None:
        old_customer = before["CustomerRef"]["value"]
        new_customer = after["CustomerRef"]["value"]
        old_balance = to_decimal(before.get("Balance"))
        new_balance = to_decimal(after.get("Balance"))
        if old_customer == new_customer:
            if new_balance != old_balance:
                self._adjust_customer_balance(new_customer, new_balance - old_balance, now)
            return
        self._adjust_customer_balance(old_customer, -old_balance, now)
        self._adjust_customer_balance(new_customer, new_balance, now)

    def _adjust_customer_balance(self, customer_id: str, delta: Decimal, now: datetime) -> None:
        """Keep Balance/BalanceWithJobs equal to open invoices.

        The customer's LastUpdatedTime moves so incremental syncs see the new balance;
        its SyncToken does not, as the customer itself was not edited.
        """
        if delta == 0:
            return
        customer = self.get(CUSTOMER.name, customer_id)
        if customer is None:
            return
        parent_id = (customer.get("ParentRef") or {}).get("value")
        self._change_customer(customer, ("Balance", "BalanceWithJobs"), delta, now)
        parent = self.get(CUSTOMER.name, parent_id) if parent_id else None
        if parent is not None:
            self._change_customer(parent, ("BalanceWithJobs",), delta, now)

    def _change_customer(
        self, customer: dict[str, Any], keys: tuple[str, ...], delta: Decimal, now: datetime
    ) -> None:
        body = copy.deepcopy(customer)
        for key in keys:
            body[key] = json_amount(cents(to_decimal(body.get(key)) + delta))
        body["MetaData"] = {**body.get("MetaData", {}), "LastUpdatedTime": format_qbo(now)}
        self._store(CUSTOMER, body, UPDATED)

    # Merging and voiding -------------------------------------------------------------------

    def merge(self, entity: Entity, from_id: str, into_id: str, now: datetime) -> dict[str, Any]:
        """Fold one customer into another, as QBO merges name-list entries.

        The merged-away customer stays, inactive, so a read of it still answers; its open
        invoices and unapplied credit memos move to the survivor, which gets a new version
        too. A receiver learns of
        it from one `merged` change naming both, so neither customer's balance move is
        reported again as an update; each moved invoice is, as it is a new version.
        """
        if entity is not CUSTOMER:
            raise _unsupported("Merge", entity.name)
        source = self._found(CUSTOMER, from_id)
        survivor = self._found(CUSTOMER, into_id)
        if source["Id"] == survivor["Id"]:
            raise _bad_request("A customer cannot be merged into itself; name two customers")
        if not survivor.get("Active", True):
            raise _bad_request(f"Customer {survivor['Id']} is inactive; merge into an active one")
        into = survivor["Id"]
        with self._folding({(CUSTOMER.name, source["Id"]), (CUSTOMER.name, survivor["Id"])}):
            moved = [
                self._update(INVOICE, {**_version(invoice), "CustomerRef": {"value": into}}, now)
                for invoice in self._open_invoices(source["Id"])
            ]
            for memo in self._open_credits(source["Id"]):
                self._move_credit(memo, into, now)
            merged = self._update(
                CUSTOMER, {**_version(self._found(CUSTOMER, from_id)), "Active": False}, now
            )
            survivor = self._update(CUSTOMER, _version(self._found(CUSTOMER, into_id)), now)
        self._report(CUSTOMER.name, survivor["Id"], MERGED, _stamp(survivor), merged["Id"])
        return {"Customer": survivor, "Merged": merged, "MovedInvoices": [i["Id"] for i in moved]}

    def void(self, entity: Entity, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Void an invoice as QBO does: it stays, with every amount and its balance zero."""
        if entity is not INVOICE:
            raise _unsupported("Void", entity.name)
        existing = self._existing(entity, payload)
        body = copy.deepcopy(existing)
        _zero_amounts(body)
        body["PrivateNote"] = "Voided"
        _next_version(existing, body, now)
        self._store(INVOICE, body, VOIDED)
        delta = -to_decimal(existing.get("Balance"))
        self._adjust_customer_balance(existing["CustomerRef"]["value"], delta, now)
        return body

    def _found(self, entity: Entity, entity_id: str) -> dict[str, Any]:
        body = self.get(entity.name, str(entity_id))
        if body is None:
            raise not_found(entity.name, str(entity_id))
        return body

    def _open_invoices(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's invoices with something owed, from the index (no body decoded
        for the others)."""
        table = self.tables[INVOICE.name]
        customer = table.schema.position("CustomerRef")
        balance = table.schema.position("Balance")
        owing = [
            n for n, row in table.rows.items() if row[customer] == customer_id and row[balance]
        ]
        return [body for n in sorted(owing) if (body := table.get(n)) is not None]

    def _open_credits(self, customer_id: str) -> list[dict[str, Any]]:
        table = self.tables[CREDIT_MEMO.name]
        customer = table.schema.position("CustomerRef")
        mine = sorted(n for n, row in table.rows.items() if row[customer] == customer_id)
        return [
            body
            for n in mine
            if (body := table.get(n)) is not None and to_decimal(body.get("RemainingCredit"))
        ]

    def _move_credit(self, memo: dict[str, Any], into: str, now: datetime) -> None:
        """A credit memo moves to another customer with its unapplied credit."""
        credit = to_decimal(memo.get("RemainingCredit"))
        self._update(CREDIT_MEMO, {**_version(memo), "CustomerRef": {"value": into}}, now)
        self._adjust_customer_balance(memo["CustomerRef"]["value"], credit, now)
        self._adjust_customer_balance(into, -credit, now)

    # Reporting changes ---------------------------------------------------------------------

    def _store(self, entity: Entity, body: dict[str, Any], operation: str) -> None:
        """Keep a new version of an entity; the one place writes are reported from."""
        self.tables[entity.name].put(int(body["Id"]), body)
        if self.on_change is not None and (entity.name, body["Id"]) not in self._folded:
            self._report(entity.name, body["Id"], operation, _stamp(body))

    def _report(
        self,
        entity: str,
        entity_id: str,
        operation: str,
        stamp: datetime,
        deleted_id: str | None = None,
    ) -> None:
        if self.on_change is not None:
            self.on_change(Change(self.realm_id, entity, entity_id, operation, stamp, deleted_id))

    @contextmanager
    def _folding(self, keys: set[tuple[str, str]]) -> Iterator[None]:
        """Writes to these (entity, Id) in the block are reported by the caller as one."""
        self._folded = frozenset(keys)
        try:
            yield
        finally:
            self._folded = frozenset()

    # Admin ----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        customers = list(self.tables[CUSTOMER.name].all())
        invoices = self.tables[INVOICE.name].all()
        invoice_summary = {
            "count": 0,
            "total_amt_sum": ZERO,
            "balance_sum": ZERO,
            "line_count": 0,
            "line_amount_sum": ZERO,
        }
        for invoice in invoices:
            invoice_summary["count"] += 1
            invoice_summary["total_amt_sum"] += to_decimal(invoice.get("TotalAmt"))
            invoice_summary["balance_sum"] += to_decimal(invoice.get("Balance"))
            for line in invoice.get("Line", []):
                invoice_summary["line_count"] += 1
                invoice_summary["line_amount_sum"] += to_decimal(line.get("Amount"))
        return {
            "Customer": {
                "count": len(customers),
                "active": sum(1 for c in customers if c.get("Active", True)),
                "balance_sum": _money_text(
                    sum((to_decimal(c.get("Balance")) for c in customers), ZERO)
                ),
            },
            "Invoice": {
                key: _money_text(value) if isinstance(value, Decimal) else value
                for key, value in invoice_summary.items()
            },
            # Customers' balances are their open invoices less these unapplied credits.
            "CreditMemo": {
                "remaining_credit_sum": _money_text(
                    sum(
                        (
                            to_decimal(memo.get("RemainingCredit"))
                            for memo in self.tables[CREDIT_MEMO.name].all()
                        ),
                        ZERO,
                    )
                )
            },
            "counts": self.counts(),  # every entity's rows, name lists included
        }


def preferences(info: dict[str, Any], *, multi_currency: bool) -> dict[str, Any]:
    """The company's Preferences: US dollars at home, sales tax on, classes and locations
    tracked, as a company with customers abroad would set them; stamped as its info."""
    return {
        "AccountingInfoPrefs": {
            "FirstMonthOfFiscalYear": "January",
            "UseAccountNumbers": True,
            "TaxYearMonth": "January",
            "ClassTrackingPerTxn": False,
            "ClassTrackingPerTxnLine": True,
            "TrackDepartments": True,
            "DepartmentTerminology": "Location",
        },
        "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDiscount": True},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": True},
        "CurrencyPrefs": {
            "MultiCurrencyEnabled": multi_currency,
            "HomeCurrency": {"value": "USD"},
        },
        "domain": "QBO",
        "sparse": False,
        "Id": "1",
        "SyncToken": "0",
        "MetaData": dict(info["MetaData"]),
    }


def _money_text(value: Decimal) -> str:
    return str(cents(value))


def _number_sales_lines(lines: list[dict[str, Any]]) -> None:
    """Give new sales lines the next line Id and LineNum; other line kinds have neither."""
    taken = [int(line["Id"]) for line in lines if str(line.get("Id", "")).isdigit()]
    next_id = max(taken, default=0) + 1
    for position, line in enumerate(
        (line for line in lines if line.get("DetailType") == "SalesItemLineDetail"), 1
    ):
        if not line.get("Id"):
            line["Id"] = str(next_id)
            next_id += 1
        line["LineNum"] = position


def _linked_invoices(payment: dict[str, Any]) -> list[tuple[str, Decimal]]:
    """(invoice Id, amount) for each payment line that pays an invoice."""
    return [
        (str(link.get("TxnId")), to_decimal(line.get("Amount")))
        for line in payment.get("Line") or []
        for link in line.get("LinkedTxn") or []
        if link.get("TxnType") == "Invoice"
    ]


def _next_version(existing: dict[str, Any], body: dict[str, Any], now: datetime) -> None:
    """Make `body` the version after `existing`: one SyncToken more, last updated `now`."""
    body["SyncToken"] = str(int(existing["SyncToken"]) + 1)
    body["MetaData"] = {**existing.get("MetaData", {}), "LastUpdatedTime": format_qbo(now)}


def _version(body: dict[str, Any]) -> dict[str, Any]:
    """A sparse update of `body` that changes nothing by itself."""
    return {"Id": body["Id"], "SyncToken": body["SyncToken"], "sparse": True}


def _stamp(body: dict[str, Any]) -> datetime:
    return parse_instant(body["MetaData"]["LastUpdatedTime"])


def _zero_amounts(invoice: dict[str, Any]) -> None:
    """What voiding leaves: the lines kept, every amount, the tax and the balance zero."""
    for line in invoice.get("Line", []):
        line["Amount"] = 0
        detail = line.get("SalesItemLineDetail")
        if isinstance(detail, dict) and "Qty" in detail:
            detail["Qty"] = 0
    for key in ("TotalAmt", "Balance", "Deposit", "HomeTotalAmt", "HomeBalance"):
        if key in invoice or key in ("TotalAmt", "Balance"):
            invoice[key] = 0
    tax = invoice.get("TxnTaxDetail")
    if isinstance(tax, dict):
        tax["TotalTax"] = 0
        for line in tax.get("TaxLine") or []:
            line["Amount"] = 0
            detail = line.get("TaxLineDetail")
            if isinstance(detail, dict) and "NetAmountTaxable" in detail:
                detail["NetAmountTaxable"] = 0


def _unsupported(operation: str, entity: str) -> ServiceFault:
    return ServiceFault(
        "500", "Unsupported Operation", f"Operation {operation} is not supported for {entity}."
    )


def _invalid_reference(element: str, value: Any) -> ServiceFault:
    return ServiceFault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {element} assigned is invalid: {value}",
        element=element,
    )


def _bad_request(detail: str) -> ServiceFault:
    return ServiceFault("2010", "Request has invalid or unsupported property", detail)
