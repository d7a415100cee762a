"""The generated company's name lists, consistent with its customers and invoices.

Every account, item, term and tax code an invoice or customer refers to exists here: the
items invoices sell (generator.ITEMS) with the accounts they post to, the terms
(generator.TERMS), one tax rate and tax code per sales tax percent an invoice charges
(generator.TAX_PERCENTS), and the discount account. Vendors and employees grow with the
company. Like the rest of the company, each list is a pure function of the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from qbo_pipeline.emulator.amounts import json_number
from qbo_pipeline.emulator.generator import (
    COMPANY_TRADES,
    COMPANY_WORDS,
    FIRST_NAMES,
    ITEMS,
    LAST_NAMES,
    REGIONS,
    START,
    TAX_PERCENTS,
    TERMS,
    tax_ids,
)
from qbo_pipeline.quickbooks.timestamps import format_qbo

# (Id, name, classification, account type, detail type). Ids are the sandbox company's
# where it has the account, so replayed and generated data name the same ones.
ACCOUNTS = (
    ("35", "Checking", "Asset", "Bank", "Checking"),
    ("36", "Savings", "Asset", "Bank", "Savings"),
    ("4", "Undeposited Funds", "Asset", "Other Current Asset", "UndepositedFunds"),
    ("84", "Accounts Receivable (A/R)", "Asset", "Accounts Receivable", "AccountsReceivable"),
    ("81", "Inventory Asset", "Asset", "Other Current Asset", "Inventory"),
    ("39", "Accumulated Depreciation", "Asset", "Fixed Asset", "AccumulatedDepreciation"),
    ("33", "Accounts Payable (A/P)", "Liability", "Accounts Payable", "AccountsPayable"),
    ("41", "Mastercard", "Liability", "Credit Card", "CreditCard"),
    ("89", "Sales Tax Payable", "Liability", "Other Current Liability", "SalesTaxPayable"),
    ("2", "Opening Balance Equity", "Equity", "Equity", "OpeningBalanceEquity"),
    ("3", "Retained Earnings", "Equity", "Equity", "RetainedEarnings"),
    ("1", "Services", "Revenue", "Income", "ServiceFeeIncome"),
    ("45", "Landscaping Services", "Revenue", "Income", "ServiceFeeIncome"),
    ("48", "Fountains and Garden Lighting", "Revenue", "Income", "SalesOfProductIncome"),
    ("79", "Sales of Product Income", "Revenue", "Income", "SalesOfProductIncome"),
    ("86", "Discounts given", "Revenue", "Income", "DiscountsRefundsGiven"),
    ("80", "Cost of Goods Sold", "Expense", "Cost of Goods Sold", "SuppliesMaterialsCogs"),
    ("7", "Advertising", "Expense", "Expense", "AdvertisingPromotional"),
    ("15", "Equipment Rental", "Expense", "Expense", "EquipmentRental"),
    ("58", "Rent or Lease", "Expense", "Expense", "RentOrLeaseOfBuildings"),
    ("24", "Job Expenses", "Expense", "Expense", "SuppliesMaterials"),
    ("64", "Depreciation", "Expense", "Other Expense", "Depreciation"),
)
# Items stocked as inventory; the rest are services (income account "Services" or
# "Landscaping Services") or non-inventory products.
INVENTORY = {"5", "11", "16", "17"}
SERVICES = {"1": "1", "8": "45", "9": "1", "12": "45"}  # item Id -> its income account
PAYMENT_METHODS = (
    ("1", "Cash", "NON_CREDIT_CARD"),
    ("2", "Check", "NON_CREDIT_CARD"),
    ("3", "Visa", "CREDIT_CARD"),
    ("4", "MasterCard", "CREDIT_CARD"),
    ("5", "Discover", "CREDIT_CARD"),
    ("6", "American Express", "CREDIT_CARD"),
)
CLASSES = ((1, "Landscaping", None), (2, "Design", None), (3, "Maintenance", None))
SUB_CLASSES = ((4, "Residential", 3), (5, "Commercial", 3))
DEPARTMENTS = ((1, "North", None), (2, "South", None), (3, "Online", None))
TAX_AGENCIES = (("1", "Board of Equalization"), ("2", "Department of Revenue"))


Row = tuple[str, int, dict[str, Any]]  # (entity name, Id, body)


def purchase_cost(price: Decimal) -> Decimal:
    """What the company pays for a unit of an inventory item it sells at `price`."""
    return (price * Decimal("0.55")).quantize(Decimal(1))


class ListGenerator:
    """Builds each name list of a generated company from the seed."""

    def __init__(self, seed: int, customers: int) -> None:
        self.seed = seed
        self.vendors = max(5, customers // 20)
        self.employees = max(3, customers // 200)

    def lists(self) -> Iterator[Row]:
        """(entity name, Id, body) of every row of every list."""
        yield from self._accounts()
        yield from self._items()
        for term_id, name, days in TERMS:
            body = {"Name": name, "Active": True, "Type": "STANDARD", "DueDays": days}
            yield self._row("Term", term_id, body)
        for method_id, name, kind in PAYMENT_METHODS:
            body = {"Name": name, "Active": True, "Type": kind}
            yield self._row("PaymentMethod", method_id, body)
        yield from self._tree("Class", CLASSES + SUB_CLASSES, "SubClass")
        yield from self._tree("Department", DEPARTMENTS, "SubDepartment")
        yield from self._tax()
        for number in range(1, self.vendors + 1):
            yield self.vendor(number)
        for number in range(1, self.employees + 1):
            yield self.employee(number)

    def _rng(self, entity: str, number: int) -> random.Random:
        return random.Random(f"{self.seed}/{entity}/{number}")

    def _row(self, entity: str, number: int | str, body: dict[str, Any]) -> Row:
        """The row, its body given the header every entity has: set up before the first
        invoice, and some changed since."""
        number = int(number)
        rng = self._rng(entity, number)
        created = START - timedelta(days=rng.randrange(1, 60), seconds=rng.randrange(86400))
        updated = created + timedelta(days=rng.randrange(0, 400)) if rng.random() < 0.3 else created
        header = {
            "domain": "QBO",
            "sparse": False,
            "Id": str(number),
            "SyncToken": "1" if updated > created else "0",
            "MetaData": {"CreateTime": format_qbo(created), "LastUpdatedTime": format_qbo(updated)},
        }
        return entity, number, body | header

    def _accounts(self) -> Iterator[Row]:
        for account_id, name, classification, kind, detail in ACCOUNTS:
            body = {
                "Name": name,
                "SubAccount": False,
                "FullyQualifiedName": name,
                "Active": True,
                "Classification": classification,
                "AccountType": kind,
                "AccountSubType": detail,
                "CurrentBalance": 0,
                "CurrentBalanceWithSubAccounts": 0,
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            }
            yield self._row("Account", account_id, body)

    def _items(self) -> Iterator[Row]:
        names = {account_id: name for account_id, name, *_ in ACCOUNTS}
        for item_id, name, price in ITEMS:
            body: dict[str, Any] = {
                "Name": name,
                "Description": name,
                "Active": True,
                "FullyQualifiedName": name,
                "Taxable": item_id not in SERVICES,
                "UnitPrice": json_number(price),
                "PurchaseCost": 0,
            }
            if item_id in INVENTORY:
                income = "48"
                body |= {
                    "Type": "Inventory",
                    "TrackQtyOnHand": True,
                    "QtyOnHand": self._rng("Stock", int(item_id)).randrange(0, 500),
                    "PurchaseCost": json_number(purchase_cost(price)),
                    "AssetAccountRef": {"value": "81", "name": names["81"]},
                    "ExpenseAccountRef": {"value": "80", "name": names["80"]},
                }
            else:
                income = SERVICES.get(item_id, "79")
                body |= {
                    "Type": "Service" if item_id in SERVICES else "NonInventory",
                    "TrackQtyOnHand": False,
                }
            body["IncomeAccountRef"] = {"value": income, "name": names[income]}
            yield self._row("Item", item_id, body)

    def _tree(
        self, entity: str, rows: tuple[tuple[int, str, int | None], ...], sub_flag: str
    ) -> Iterator[Row]:
        names = {number: name for number, name, _ in rows}
        for number, name, parent in rows:
            body: dict[str, Any] = {"Name": name, "Active": True, sub_flag: parent is not None}
            body["FullyQualifiedName"] = f"{names[parent]}:{name}" if parent else name
            if parent is not None:
                body["ParentRef"] = {"value": str(parent)}
            yield self._row(entity, number, body)

    def _tax(self) -> Iterator[Row]:
        for agency_id, name in TAX_AGENCIES:
            body = {"DisplayName": name, "TaxTrackedOnSales": True, "TaxTrackedOnPurchases": False}
            yield self._row("TaxAgency", agency_id, body)
        for index, percent in enumerate(TAX_PERCENTS):
            code_id, rate_id = tax_ids(percent)
            place = REGIONS["USD"].places[index % len(REGIONS["USD"].places)][0]
            agency = TAX_AGENCIES[index % len(TAX_AGENCIES)][0]
            rate = {
                "Name": f"{place} sales tax",
                "Description": "Sales Tax",
                "Active": True,
                "RateValue": json_number(percent),
                "AgencyRef": {"value": agency},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
            }
            yield self._row("TaxRate", rate_id, rate)
            code = {
                "Name": place,
                "Description": place,
                "Active": True,
                "Taxable": True,
                "TaxGroup": True,
                "SalesTaxRateList": {
                    "TaxRateDetail": [
                        {
                            "TaxRateRef": {"value": rate_id, "name": rate["Name"]},
                            "TaxTypeApplicable": "TaxOnAmount",
                            "TaxOrder": 0,
                        }
                    ]
                },
                "PurchaseTaxRateList": {"TaxRateDetail": []},
            }
            yield self._row("TaxCode", code_id, code)

    def vendor(self, number: int) -> Row:
        rng = self._rng("Vendor", number)
        name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES)} Supply {number}"
        city, region, postal = rng.choice(REGIONS["USD"].places)
        body: dict[str, Any] = {
            "DisplayName": name,
            "CompanyName": name,
            "PrintOnCheckName": name,
            "Active": rng.random() >= 0.05,
            "Vendor1099": rng.random() < 0.2,
            "Balance": 0,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "BillAddr": {
                "Id": str(2_000_000 + number),
                "City": city,
                "CountrySubDivisionCode": region,
                "PostalCode": postal,
                "Country": "USA",
            },
            "TermRef": {"value": rng.choice(TERMS)[0]},
        }
        if rng.random() < 0.7:
            slug = name.lower().replace(" ", "")[:24]
            body["PrimaryEmailAddr"] = {"Address": f"billing@{slug}.example"}
        return self._row("Vendor", number, body)

    def employee(self, number: int) -> Row:
        rng = self._rng("Employee", number)
        given, family = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        hired = START - timedelta(days=rng.randrange(30, 3000))
        body: dict[str, Any] = {
            "GivenName": given,
            "FamilyName": family,
            "DisplayName": f"{given} {family} (E{number})",
            "PrintOnCheckName": f"{given} {family}",
            "Active": rng.random() >= 0.1,
            "EmployeeNumber": f"E{number:04d}",
            "HiredDate": hired.date().isoformat(),
            "BillableTime": rng.random() < 0.5,
        }
        if body["BillableTime"]:
            body["BillRate"] = rng.choice((45, 65, 85, 120))
        return self._row("Employee", number, body)
