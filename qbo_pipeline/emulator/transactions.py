"""The generated company's transactions beyond invoices, consistent with its lists, its
customers and its invoices.

- every settled invoice has the Payment its LinkedTxn names, for the amount that left
  the invoice's balance, on the day it was paid;
- bills are paid by bill payments that link them, and each bill's balance is its total
  less what was paid; a vendor's balance is its open bills less its open credits;
- credit memos stay unapplied, and count against their customer's balance;
- journal entries balance; every line's account, item, class, customer, vendor and
  employee exists in the company's lists;
- sales forms add up as invoices do (amounts.recompute_invoice), tax lines included.

Like invoices, each transaction is a pure function of (seed, Id). Volumes follow the
number of invoices, so the medium benchmark company holds over half a million entities.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from qbo_pipeline.emulator.amounts import (
    ZERO,
    cents,
    json_amount,
    json_number,
    recompute_invoice,
    to_decimal,
)
from qbo_pipeline.emulator.generator import (
    ANCHOR,
    ITEMS,
    REGIONS,
    SPAN,
    START,
    TERMS,
    Card,
    crew_field,
    later,
    sales_lines,
    tax_detail,
)
from qbo_pipeline.emulator.ledger import AP, AR
from qbo_pipeline.emulator.lists import (
    ACCOUNTS,
    INVENTORY,
    PAYMENT_METHODS,
    Row,
    purchase_cost,
)
from qbo_pipeline.quickbooks.timestamps import PACIFIC, format_qbo, parse_instant

PAYMENT_IDS = 5_000_000  # a settled invoice i links Payment PAYMENT_IDS + i

# Account Ids (lists.ACCOUNTS names them).
CHECKING, SAVINGS, CARD = "35", "36", "41"  # receivable and payable: ledger.AR, AP
OPENING_EQUITY, DEPRECIATION, ACCUMULATED = "2", "64", "39"
EXPENSE_ACCOUNTS = ("7", "15", "58", "24")
BUDGETED = ("1", "45", *EXPENSE_ACCOUNTS)
_ACCOUNT_NAMES = {account_id: name for account_id, name, *_ in ACCOUNTS}
_CLASSES = ("1", "2", "3", "4", "5")
_PREFIXES = {"SalesReceipt": "SR", "Estimate": "EST", "CreditMemo": "CM", "RefundReceipt": "RR"}
_COSTS = {item_id: (name, purchase_cost(price)) for item_id, name, price in ITEMS}


@dataclass(frozen=True)
class Volumes:
    """How many of each transaction a company with `invoices` invoices has: a few of
    each however small, so every table of a test company has rows."""

    invoices: int

    def of(self, entity: str) -> int:
        share, least = _SHARES[entity]
        return max(least, self.invoices // share)


# entity -> (one per this many invoices, at least)
_SHARES = {
    "Bill": (5, 4),
    "Purchase": (5, 4),
    "SalesReceipt": (10, 3),
    "Estimate": (10, 3),
    "TimeActivity": (10, 4),
    "CreditMemo": (50, 2),
    "PurchaseOrder": (50, 2),
    "Deposit": (50, 2),
    "JournalEntry": (100, 3),
    "RefundReceipt": (100, 1),
    "VendorCredit": (100, 2),
    "Transfer": (100, 2),
}


@dataclass
class Balances:
    """What the transactions leave open, for the customers and vendors they name."""

    customers: dict[int, Decimal]
    vendors: dict[int, Decimal]


class TransactionGenerator:
    """Builds each transaction from the seed; `card(c)` is customer c's card."""

    def __init__(
        self,
        seed: int,
        customers: int,
        volumes: Volumes,
        vendors: int,
        employees: int,
        card: Callable[[int], Card],
    ) -> None:
        self.seed = seed
        self.customers = customers
        self.volumes = volumes
        self.vendors = vendors
        self.employees = employees
        self.card = card
        self.balances = Balances({}, {})

    def _rng(self, entity: str, number: int) -> random.Random:
        return random.Random(f"{self.seed}/{entity}/{number}")

    # Payments of invoices ------------------------------------------------------------------

    def payment(self, invoice: dict[str, Any]) -> Row | None:
        """The Payment a generated invoice's LinkedTxn names, if it was paid at all."""
        links = [link for link in invoice["LinkedTxn"] if link["TxnType"] == "Payment"]
        if not links:
            return None
        number = int(links[0]["TxnId"])
        paid = to_decimal(invoice["TotalAmt"]) - to_decimal(invoice["Balance"])
        stamp = invoice["MetaData"]["LastUpdatedTime"]
        rng = self._rng("Payment", number)
        method_id, method, _ = rng.choice(PAYMENT_METHODS)
        body: dict[str, Any] = {
            "TxnDate": parse_instant(stamp).astimezone(PACIFIC).date().isoformat(),
            "CurrencyRef": invoice["CurrencyRef"],
            "CustomerRef": invoice["CustomerRef"],
            "DepositToAccountRef": _ref(CHECKING),
            "ARAccountRef": _ref(AR),
            "PaymentMethodRef": {"value": method_id, "name": method},
            "PaymentRefNum": str(rng.randrange(1000, 99999)),
            "TotalAmt": json_amount(paid),
            "UnappliedAmt": 0,
            "ProcessPayment": False,
            "Line": [
                {
                    "Amount": json_amount(paid),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                }
            ],
        }
        if "ExchangeRate" in invoice:
            body["ExchangeRate"] = invoice["ExchangeRate"]
        return _row("Payment", number, body, stamp, stamp)

    # Everything else -----------------------------------------------------------------------

    def rows(self) -> Iterator[Row]:
        """Every other transaction; `balances` holds what they leave open afterwards."""
        makers: dict[str, Callable[[int, random.Random], Iterator[Row]]] = {
            "Bill": self._bill,
            "Purchase": self._purchase,
            "PurchaseOrder": self._purchase_order,
            "VendorCredit": self._vendor_credit,
            "SalesReceipt": self._sales_receipt,
            "Estimate": self._estimate,
            "CreditMemo": self._credit_memo,
            "RefundReceipt": self._refund_receipt,
            "Deposit": self._deposit,
            "Transfer": self._transfer,
            "JournalEntry": self._journal_entry,
            "TimeActivity": self._time_activity,
        }
        for entity, make in makers.items():
            for number in range(1, self.volumes.of(entity) + 1):
                yield from make(number, self._rng(entity, number))
        yield from self._budgets()

    def _when(self, entity: str, number: int, rng: random.Random) -> tuple[datetime, datetime]:
        """(created, last updated): spread over the two years like invoices."""
        count = self.volumes.of(entity)
        slot = SPAN / max(count, 1)
        created = START + slot * (number - 1) + slot * rng.random()
        return created, later(rng, created, days=30)

    def _vendor(self, rng: random.Random) -> tuple[int, dict[str, str]]:
        number = rng.randrange(1, self.vendors + 1)
        return number, {"value": str(number)}

    # Purchases ---------------------------------------------------------------------------

    def _bill(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("Bill", number, rng)
        vendor, vendor_ref = self._vendor(rng)
        txn_date = _date(created)
        term_id, term_name, days = rng.choice(TERMS)
        lines = self._expense_lines(rng)
        total = _total(lines)
        draw = rng.random()
        paid = total if draw < 0.6 else cents(total * Decimal(rng.randrange(20, 80)) / 100)
        paid = paid if draw < 0.75 else ZERO
        body: dict[str, Any] = {
            "DocNumber": f"B-{number}",
            "TxnDate": txn_date.isoformat(),
            "DueDate": (txn_date + timedelta(days=days)).isoformat(),
            "SalesTermRef": {"value": term_id, "name": term_name},
            "CurrencyRef": _usd(),
            "VendorRef": vendor_ref,
            "APAccountRef": _ref(AP),
            "Line": lines,
            "TotalAmt": json_amount(total),
            "Balance": json_amount(total - paid),
            "LinkedTxn": [],
        }
        self._owe(vendor, total - paid)
        if paid:
            paid_at = min(created + timedelta(days=rng.randrange(1, 45)), ANCHOR)
            updated = max(updated, paid_at)
            payment = self._bill_payment(number, rng, vendor_ref, paid, paid_at)
            # QBO names a bill's payment by how it was paid, not by its entity.
            kind = (
                "BillPaymentCheck" if payment[2]["PayType"] == "Check" else "BillPaymentCreditCard"
            )
            body["LinkedTxn"] = [{"TxnId": str(number), "TxnType": kind}]
            yield payment
        yield _row("Bill", number, body, format_qbo(created), format_qbo(updated))

    def _bill_payment(
        self,
        number: int,
        rng: random.Random,
        vendor_ref: dict[str, str],
        paid: Decimal,
        at: datetime,
    ) -> Row:
        """The payment of bill `number`, which takes the bill's number as its Id."""
        body: dict[str, Any] = {
            "DocNumber": str(5000 + number),
            "TxnDate": _date(at).isoformat(),
            "CurrencyRef": _usd(),
            "VendorRef": vendor_ref,
            "APAccountRef": _ref(AP),
            "TotalAmt": json_amount(paid),
            "Line": [
                {
                    "Amount": json_amount(paid),
                    "LinkedTxn": [{"TxnId": str(number), "TxnType": "Bill"}],
                }
            ],
        }
        if rng.random() < 0.8:
            body["PayType"] = "Check"
            body["CheckPayment"] = {"BankAccountRef": _ref(CHECKING), "PrintStatus": "NotSet"}
        else:
            body["PayType"] = "CreditCard"
            body["CreditCardPayment"] = {"CCAccountRef": _ref(CARD)}
        stamp = format_qbo(at)
        return _row("BillPayment", number, body, stamp, stamp)

    def _purchase(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("Purchase", number, rng)
        _, vendor_ref = self._vendor(rng)
        lines = self._expense_lines(rng)
        kind = rng.choice(("Cash", "Check", "CreditCard", "CreditCard"))
        body: dict[str, Any] = {
            "TxnDate": _date(created).isoformat(),
            "CurrencyRef": _usd(),
            "PaymentType": kind,
            "AccountRef": _ref(CARD if kind == "CreditCard" else CHECKING),
            "EntityRef": {**vendor_ref, "type": "Vendor"},
            "Credit": False,
            "Line": lines,
            "TotalAmt": json_amount(_total(lines)),
        }
        if kind == "Check":
            body["DocNumber"] = str(2000 + number)
        yield _row("Purchase", number, body, format_qbo(created), format_qbo(updated))

    def _purchase_order(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("PurchaseOrder", number, rng)
        _, vendor_ref = self._vendor(rng)
        lines = [self._item_expense(rng, index) for index in range(1, rng.randrange(2, 5))]
        body = {
            "DocNumber": f"PO-{number}",
            "TxnDate": _date(created).isoformat(),
            "CurrencyRef": _usd(),
            "VendorRef": vendor_ref,
            "APAccountRef": _ref(AP),
            "POStatus": "Open" if rng.random() < 0.7 else "Closed",
            "Line": lines,
            "TotalAmt": json_amount(_total(lines)),
        }
        yield _row("PurchaseOrder", number, body, format_qbo(created), format_qbo(updated))

    def _vendor_credit(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("VendorCredit", number, rng)
        vendor, vendor_ref = self._vendor(rng)
        lines = [self._account_expense(rng, 1)]
        total = _total(lines)
        body = {
            "DocNumber": f"VC-{number}",
            "TxnDate": _date(created).isoformat(),
            "CurrencyRef": _usd(),
            "VendorRef": vendor_ref,
            "APAccountRef": _ref(AP),
            "Line": lines,
            "TotalAmt": json_amount(total),
            "Balance": json_amount(total),
        }
        self._owe(vendor, -total)
        yield _row("VendorCredit", number, body, format_qbo(created), format_qbo(updated))

    def _expense_lines(self, rng: random.Random) -> list[dict[str, Any]]:
        count = rng.choice((1, 1, 2, 3))
        return [
            self._account_expense(rng, index)
            if rng.random() < 0.6
            else self._item_expense(rng, index)
            for index in range(1, count + 1)
        ]

    def _account_expense(self, rng: random.Random, index: int) -> dict[str, Any]:
        account = rng.choice(EXPENSE_ACCOUNTS)
        detail: dict[str, Any] = {
            "AccountRef": _ref(account),
            "BillableStatus": "NotBillable",
            "TaxCodeRef": {"value": "NON"},
        }
        if rng.random() < 0.25:
            detail["BillableStatus"] = "Billable"
            detail["CustomerRef"] = {"value": str(rng.randrange(1, self.customers + 1))}
        if rng.random() < 0.4:
            detail["ClassRef"] = {"value": rng.choice(_CLASSES)}
        amount = Decimal(rng.randrange(1500, 250000)) / 100
        return {
            "Id": str(index),
            "LineNum": index,
            "Description": _ACCOUNT_NAMES[account],
            "Amount": json_amount(amount),
            "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": detail,
        }

    def _item_expense(self, rng: random.Random, index: int) -> dict[str, Any]:
        item_id = rng.choice(sorted(INVENTORY))
        name, cost = _COSTS[item_id]
        qty = rng.choice((1, 2, 5, 10, 20))
        detail = {
            "ItemRef": {"value": item_id, "name": name},
            "UnitPrice": json_number(cost),
            "Qty": qty,
            "BillableStatus": "NotBillable",
            "TaxCodeRef": {"value": "NON"},
        }
        return {
            "Id": str(index),
            "LineNum": index,
            "Description": name,
            "Amount": json_amount(cents(cost * qty)),
            "DetailType": "ItemBasedExpenseLineDetail",
            "ItemBasedExpenseLineDetail": detail,
        }

    def _owe(self, vendor: int, amount: Decimal) -> None:
        self.balances.vendors[vendor] = self.balances.vendors.get(vendor, ZERO) + amount

    # Sales forms -------------------------------------------------------------------------

    def _sales_form(
        self, entity: str, number: int, rng: random.Random
    ) -> tuple[int, dict[str, Any], datetime, datetime]:
        """A sales form's customer, lines, tax and currency, added up as an invoice is."""
        created, updated = self._when(entity, number, rng)
        customer = rng.randrange(1, self.customers + 1)
        card = self.card(customer)
        region = REGIONS[card.currency]
        txn_date = _date(created)
        body: dict[str, Any] = {
            "CustomField": [crew_field(rng)],
            "DocNumber": f"{_PREFIXES[entity]}-{number}",
            "TxnDate": txn_date.isoformat(),
            "CurrencyRef": {"value": region.currency, "name": region.currency_name},
            "Line": sales_lines(rng, txn_date),
            "TxnTaxDetail": tax_detail(rng),
            "CustomerRef": {"value": str(customer), "name": card.name},
            "ApplyTaxAfterDiscount": False,
        }
        if region.currency != "USD":
            rate = region.rate * (1 + Decimal(rng.randrange(-300, 300)) / 10000)
            body["ExchangeRate"] = float(rate.quantize(Decimal("0.0001")))
        recompute_invoice(body)
        return customer, body, created, updated

    def _sales_receipt(self, number: int, rng: random.Random) -> Iterator[Row]:
        _, body, created, updated = self._sales_form("SalesReceipt", number, rng)
        method_id, method, _ = rng.choice(PAYMENT_METHODS)
        body |= {
            "Balance": 0,
            "DepositToAccountRef": _ref(CHECKING),
            "PaymentMethodRef": {"value": method_id, "name": method},
        }
        yield _row("SalesReceipt", number, body, format_qbo(created), format_qbo(updated))

    def _estimate(self, number: int, rng: random.Random) -> Iterator[Row]:
        _, body, created, updated = self._sales_form("Estimate", number, rng)
        body.pop("Balance")
        body["TxnStatus"] = rng.choice(("Pending", "Pending", "Accepted", "Rejected"))
        expires = date.fromisoformat(body["TxnDate"]) + timedelta(days=30)
        body["ExpirationDate"] = expires.isoformat()
        yield _row("Estimate", number, body, format_qbo(created), format_qbo(updated))

    def _credit_memo(self, number: int, rng: random.Random) -> Iterator[Row]:
        customer, body, created, updated = self._sales_form("CreditMemo", number, rng)
        body["RemainingCredit"] = body["Balance"] = body["TotalAmt"]
        owed = self.balances.customers.get(customer, ZERO)
        self.balances.customers[customer] = owed - to_decimal(body["TotalAmt"])
        yield _row("CreditMemo", number, body, format_qbo(created), format_qbo(updated))

    def _refund_receipt(self, number: int, rng: random.Random) -> Iterator[Row]:
        _, body, created, updated = self._sales_form("RefundReceipt", number, rng)
        body |= {
            "Balance": 0,
            "DepositToAccountRef": _ref(CHECKING),
            "PaymentMethodRef": {"value": "2", "name": "Check"},
        }
        yield _row("RefundReceipt", number, body, format_qbo(created), format_qbo(updated))

    # Banking and the books ---------------------------------------------------------------

    def _deposit(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("Deposit", number, rng)
        lines = []
        for index in range(1, rng.randrange(2, 4)):
            detail: dict[str, Any] = {"AccountRef": _ref(OPENING_EQUITY)}
            if rng.random() < 0.5:
                customer = rng.randrange(1, self.customers + 1)
                detail["Entity"] = {"Type": "Customer", "EntityRef": {"value": str(customer)}}
            lines.append(
                {
                    "Id": str(index),
                    "LineNum": index,
                    "Amount": json_amount(Decimal(rng.randrange(100, 5000))),
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": detail,
                }
            )
        body = {
            "TxnDate": _date(created).isoformat(),
            "CurrencyRef": _usd(),
            "DepositToAccountRef": _ref(rng.choice((CHECKING, SAVINGS))),
            "Line": lines,
            "TotalAmt": json_amount(_total(lines)),
        }
        yield _row("Deposit", number, body, format_qbo(created), format_qbo(updated))

    def _transfer(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("Transfer", number, rng)
        source, target = (CHECKING, SAVINGS) if rng.random() < 0.6 else (SAVINGS, CHECKING)
        body = {
            "TxnDate": _date(created).isoformat(),
            "CurrencyRef": _usd(),
            "FromAccountRef": _ref(source),
            "ToAccountRef": _ref(target),
            "Amount": json_amount(Decimal(rng.randrange(5, 200) * 100)),
        }
        yield _row("Transfer", number, body, format_qbo(created), format_qbo(updated))

    def _journal_entry(self, number: int, rng: random.Random) -> Iterator[Row]:
        """The first opens the books; the rest book depreciation, some by class, some
        naming a vendor; the debits always equal the credits."""
        created, updated = self._when("JournalEntry", number, rng)
        if number == 1:
            note, debit, credit = "Opening Balance", CHECKING, OPENING_EQUITY
            amount = Decimal(25000)
        else:
            note, debit, credit = "Depreciation", DEPRECIATION, ACCUMULATED
            amount = Decimal(rng.randrange(20000, 90000)) / 100
        parts = [amount] if rng.random() < 0.5 else [cents(amount * 3 / 5), cents(amount * 2 / 5)]
        lines = []
        for posting, account, amounts in (("Debit", debit, parts), ("Credit", credit, [amount])):
            for part in amounts:
                detail: dict[str, Any] = {"PostingType": posting, "AccountRef": _ref(account)}
                if posting == "Debit" and len(parts) > 1:
                    detail["ClassRef"] = {"value": rng.choice(_CLASSES)}
                if posting == "Credit" and rng.random() < 0.3:
                    vendor = rng.randrange(1, self.vendors + 1)
                    detail["Entity"] = {"Type": "Vendor", "EntityRef": {"value": str(vendor)}}
                lines.append(
                    {
                        "Id": str(len(lines)),
                        "Description": note,
                        "Amount": json_amount(part),
                        "DetailType": "JournalEntryLineDetail",
                        "JournalEntryLineDetail": detail,
                    }
                )
        # Splitting may drift a cent: the debits are the ones rounded, so fix the last.
        drift = amount - sum(parts, ZERO)
        if drift:
            lines[len(parts) - 1]["Amount"] = json_amount(parts[-1] + drift)
        body = {
            "DocNumber": f"JE-{number}",
            "TxnDate": _date(created).isoformat(),
            "CurrencyRef": _usd(),
            "PrivateNote": note,
            "Adjustment": False,
            "Line": lines,
            "TotalAmt": json_amount(amount),
            "TxnTaxDetail": {},
        }
        yield _row("JournalEntry", number, body, format_qbo(created), format_qbo(updated))

    def _time_activity(self, number: int, rng: random.Random) -> Iterator[Row]:
        created, updated = self._when("TimeActivity", number, rng)
        employee = rng.randrange(1, self.employees + 1)
        billable = rng.random() < 0.5
        body = {
            "TxnDate": _date(created).isoformat(),
            "NameOf": "Employee",
            "EmployeeRef": {"value": str(employee)},
            "CustomerRef": {"value": str(rng.randrange(1, self.customers + 1))},
            "ItemRef": {"value": "9", "name": _COSTS["9"][0]},
            "BillableStatus": "Billable" if billable else "NotBillable",
            "Taxable": False,
            "HourlyRate": rng.choice((45, 65, 85)) if billable else 0,
            "Hours": rng.randrange(0, 9),
            "Minutes": rng.choice((0, 15, 30, 45)),
            "Description": rng.choice(("Site visit", "Design work", "Maintenance", "Install")),
        }
        yield _row("TimeActivity", number, body, format_qbo(created), format_qbo(updated))

    def _budgets(self) -> Iterator[Row]:
        """A monthly profit-and-loss budget for each of the two years the data covers."""
        for number, year in enumerate((ANCHOR.year - 1, ANCHOR.year), 1):
            rng = self._rng("Budget", number)
            details = [
                {
                    "BudgetDate": date(year, month, 1).isoformat(),
                    "Amount": json_amount(Decimal(rng.randrange(500, 20000))),
                    "AccountRef": _ref(account),
                }
                for month in range(1, 13)
                for account in BUDGETED
            ]
            body = {
                "Name": f"FY{year} plan",
                "StartDate": date(year, 1, 1).isoformat(),
                "EndDate": date(year, 12, 31).isoformat(),
                "BudgetType": "ProfitAndLoss",
                "BudgetEntryType": "Monthly",
                "Active": True,
                "BudgetDetail": details,
            }
            stamp = format_qbo(START - timedelta(days=30 - number))
            yield _row("Budget", number, body, stamp, stamp)


def _row(entity: str, number: int, body: dict[str, Any], created: str, updated: str) -> Row:
    header = {
        "domain": "QBO",
        "sparse": False,
        "Id": str(number),
        "SyncToken": "0" if created == updated else "1",
        "MetaData": {"CreateTime": created, "LastUpdatedTime": updated},
    }
    return entity, number, header | body


def _ref(account_id: str) -> dict[str, str]:
    return {"value": account_id, "name": _ACCOUNT_NAMES[account_id]}


def _usd() -> dict[str, str]:
    return {"value": "USD", "name": "United States Dollar"}


def _date(instant: datetime) -> date:
    return instant.astimezone(PACIFIC).date()


def _total(lines: list[dict[str, Any]]) -> Decimal:
    return sum((to_decimal(line["Amount"]) for line in lines), ZERO)
