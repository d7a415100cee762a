"""The deterministic demo company: its CompanyInfo, customers and invoices from a seed.

Every entity is a pure function of (seed, Id), so the company can be stored as a
compact index and each entity rebuilt when served; 300,000 entities then cost a
few hundred bytes each instead of kilobytes. Nothing reads the current date: all
stamps are spread over the two years before a fixed anchor, so both PST and PDT
offsets occur and two runs with one seed serve identical bytes.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from qbo_pipeline.emulator.amounts import ZERO, cents, json_amount, json_number, recompute_invoice
from qbo_pipeline.quickbooks.timestamps import PACIFIC, format_qbo

# Arithmetic happens in UTC: adding a timedelta to a Pacific datetime moves wall-clock
# time and can land in the hour that does not exist when DST starts.
ANCHOR = datetime(2026, 6, 30, 12, 0, 0, tzinfo=PACIFIC).astimezone(UTC)
SPAN = timedelta(days=730)
START = ANCHOR - SPAN

FIRST_NAMES = (
    "Lena", "Marcus", "Priya", "Tomás", "Zoë", "Hiro", "Amara", "Jonas", "Chloé", "Diego",
    "Fatima", "Oliver", "Mei", "Sven", "Aisha", "Noah", "Ingrid", "Rafael", "Yuki", "Grace",
    "Łukasz", "Élodie", "Kwame", "Nadia", "Bjørn", "Sofia", "Arjun", "Maeve", "Pablo", "Hana",
)  # fmt: skip
LAST_NAMES = (
    "Ortiz", "Nguyen", "Schmidt", "Okafor", "Müller", "Tanaka", "Cho", "Kowalski", "Dubois",
    "Rossi", "Haddad", "Larsen", "Patel", "O'Brien", "García", "Wójcik", "Novak", "Fischer",
    "Silva", "Andersson", "Kim", "Moreau", "Bianchi", "Yilmaz", "Murphy", "Chen", "Weiß",
)  # fmt: skip
COMPANY_WORDS = (
    "Harbor", "Summit", "Cedar", "Blue Ridge", "Copperleaf", "Northwind", "Maple", "Granite",
    "Silverline", "Redwood", "Lakeside", "Ironbridge", "Sunset", "Evergreen", "Bayview",
    "Café Müller", "Fjord", "Prairie", "Riverside", "Oakhurst", "Élan", "Kestrel", "Tidewater",
)  # fmt: skip
COMPANY_TRADES = (
    "Kitchen Supply", "Landscaping", "Design", "Plumbing", "Bakery", "Fitness", "Auto Repair",
    "Dental", "Architects", "Coffee Roasters", "Florists", "Electric", "Consulting", "Books",
)  # fmt: skip
COMPANY_SUFFIXES = ("", " LLC", " Inc.", " Co.", " GmbH", " Ltd")
# Names no composition above produces, so the unicode cases every company shows.
SPECIAL_NAMES = (
    "Café Müller GmbH", "Zoë Łukasz", "東京デザイン", "Ærø Bådebyggeri", "Søren & Søn",
    "Здравица ООО", "Ōsaka Ramen Kōbō", "Þór's Fish Market",
)  # fmt: skip
STREETS = (
    "Pier Ave", "Willow Rd", "Ocean View Road", "Main St", "Elm St", "Harbor Way", "Cedar Ln",
    "Market St", "Park Blvd", "Lakeshore Dr", "Hillcrest Ave", "Mission St",
)  # fmt: skip


@dataclass(frozen=True)
class Region:
    currency: str
    currency_name: str
    country: str
    places: tuple[tuple[str, str, str], ...]  # (city, subdivision, postal code)
    phone: str
    rate: Decimal  # home-currency (USD) per unit, before jitter


REGIONS = {
    "USD": Region(
        "USD",
        "United States Dollar",
        "USA",
        (
            ("Seattle", "WA", "98101"),
            ("Menlo Park", "CA", "94304"),
            ("Austin", "TX", "78701"),
            ("Denver", "CO", "80202"),
            ("Portland", "OR", "97205"),
            ("Tucson", "AZ", "85701"),
            ("Brooklyn", "NY", "11201"),
        ),
        "({area}) 555-{line:04d}",
        Decimal(1),
    ),
    "CAD": Region(
        "CAD",
        "Canadian Dollar",
        "CAN",
        (("Toronto", "ON", "M5V 2T6"), ("Vancouver", "BC", "V6B 1A1")),
        "({area}) 555-{line:04d}",
        Decimal("0.73"),
    ),
    "EUR": Region(
        "EUR",
        "Euro",
        "DEU",
        (("Berlin", "BE", "10115"), ("München", "BY", "80331")),
        "+49 30 {area}{line:04d}",
        Decimal("1.08"),
    ),
    "GBP": Region(
        "GBP",
        "British Pound Sterling",
        "GBR",
        (("London", "LND", "EC1A 1BB"), ("Manchester", "MAN", "M1 1AE")),
        "+44 20 {area}{line:04d}",
        Decimal("1.27"),
    ),
}

# (Id, name, unit price) of the items invoices sell.
ITEMS = (
    ("1", "Services", Decimal(50)),
    ("3", "Concrete", Decimal("47.50")),
    ("5", "Rock Fountain", Decimal(275)),
    ("11", "Pump", Decimal("150.00")),
    ("16", "Sprinkler Heads", Decimal("2.75")),
    ("17", "Sprinkler Pipes", Decimal(4)),
    ("8", "Gardening", Decimal("35.00")),
    ("9", "Hours", Decimal("82.50")),
    ("12", "Design", Decimal(75)),
    ("13", "Lighting", Decimal("19.99")),
)
TERMS = (("1", "Due on receipt", 0), ("2", "Net 15", 15), ("3", "Net 30", 30), ("4", "Net 60", 60))
TAX_PERCENTS = (Decimal(8), Decimal("8.25"), Decimal("9.5"), Decimal(5))
FIRST_TAX_ID = 2  # TaxRate and TaxCode Ids from here on, one per percent (lists.py)


def tax_ids(percent: Decimal) -> tuple[str, str]:
    """The (TaxCode, TaxRate) Ids of a sales tax percent an invoice charges."""
    number = str(FIRST_TAX_ID + TAX_PERCENTS.index(percent))
    return number, number


_PERSON_SPACE = len(FIRST_NAMES) * len(LAST_NAMES)
_COMPANY_SPACE = len(COMPANY_WORDS) * len(COMPANY_TRADES) * len(COMPANY_SUFFIXES)
# A multiplier coprime with both spaces scrambles names without repeating them.
_SCRAMBLE = 7919


@dataclass(frozen=True)
class Traits:
    """The few facts other entities need about a customer, cheap to recompute."""

    is_job: bool
    parent: int | None
    currency: str
    active: bool


class Card(NamedTuple):
    """What an invoice copies from its customer, small enough to hold for every customer."""

    name: str
    currency: str
    line1: str
    city: str
    region: str
    postal: str
    ship_id: str | None
    email: str | None
    active: bool

    @classmethod
    def of(cls, customer: dict) -> Card:
        bill = customer["BillAddr"]
        return cls(
            customer["DisplayName"],
            customer["CurrencyRef"]["value"],
            bill["Line1"],
            bill["City"],
            bill["CountrySubDivisionCode"],
            bill["PostalCode"],
            customer["ShipAddr"]["Id"] if "ShipAddr" in customer else None,
            customer.get("PrimaryEmailAddr", {}).get("Address"),
            customer["Active"],
        )


class CompanyGenerator:
    """Rebuilds any generated customer or invoice from the seed and its Id."""

    def __init__(self, seed: int, customers: int, invoices: int) -> None:
        self.seed = seed
        self.customers = customers
        self.invoices = invoices
        self._cards: list[Card] | None = None

    def hold_cards(self) -> None:
        """Keep every customer's card while invoices are generated in bulk (~300 B each)."""
        self._cards = [Card.of(self.customer(c)) for c in range(1, self.customers + 1)]

    def drop_cards(self) -> None:
        self._cards = None

    def card(self, c: int) -> Card:
        if self._cards is not None:
            return self._cards[c - 1]
        return Card.of(self.customer(c))

    def _rng(self, kind: int, number: int) -> random.Random:
        return random.Random(self.seed * 1_000_000_007 + number * 8 + kind)

    # The company itself -------------------------------------------------------------------

    def company_info(self, name: str | None = None) -> dict:
        """The company's CompanyInfo; `name` replaces the one drawn from the seed."""
        rng = self._rng(3, 0)
        drawn = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES)}"
        legal = drawn + rng.choice(COMPANY_SUFFIXES)
        city, region_code, postal = rng.choice(REGIONS["USD"].places)
        street = f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}"
        created = START - timedelta(days=rng.randrange(30, 365), seconds=rng.randrange(86400))
        updated = later(rng, created, days=365)
        return {
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "CompanyName": name or drawn,
            "LegalName": name or legal,
            "Country": "US",
            "CompanyAddr": {
                "Id": "1",
                "Line1": street,
                "City": city,
                "Country": "US",
                "CountrySubDivisionCode": region_code,
                "PostalCode": postal,
            },
            "MetaData": {"CreateTime": format_qbo(created), "LastUpdatedTime": format_qbo(updated)},
        }

    # Customers ---------------------------------------------------------------------------

    def traits(self, c: int) -> Traits:
        rng = self._rng(0, c)
        job_draw, parent_draw, currency_draw, active_draw = (rng.random() for _ in range(4))
        is_job = c > 3 and not _is_special(c) and job_draw < 0.1
        active = active_draw >= 0.1
        if is_job:
            parent = 1 + int(parent_draw * (c - 1))
            while self.traits(parent).is_job:
                parent -= 1
            return Traits(True, parent, self.traits(parent).currency, active)
        currency = (
            "USD"
            if currency_draw < 0.7
            else "CAD"
            if currency_draw < 0.8
            else "EUR"
            if currency_draw < 0.9
            else "GBP"
        )
        return Traits(False, None, currency, active)

    def display_name(self, c: int, traits: Traits | None = None) -> str:
        traits = traits or self.traits(c)
        if traits.is_job:
            return f"{c:04d} {STREETS[c % len(STREETS)]}"
        if _is_special(c):
            rounds, index = divmod(c // 23, len(SPECIAL_NAMES))
            name = SPECIAL_NAMES[index]
        elif c % 3 == 0:
            given, family = self._person(c)
            rounds = c // _PERSON_SPACE
            name = f"{given} {family}"
        else:
            slot = (c * _SCRAMBLE) % _COMPANY_SPACE
            slot, suffix = divmod(slot, len(COMPANY_SUFFIXES))
            word, trade = divmod(slot, len(COMPANY_TRADES))
            name = f"{COMPANY_WORDS[word]} {COMPANY_TRADES[trade]}{COMPANY_SUFFIXES[suffix]}"
            rounds = c // _COMPANY_SPACE
        return name if rounds == 0 else f"{name} ({rounds + 1})"

    def _person(self, c: int) -> tuple[str, str]:
        first, last = divmod((c * _SCRAMBLE) % _PERSON_SPACE, len(LAST_NAMES))
        return FIRST_NAMES[first], LAST_NAMES[last]

    def customer(self, c: int, balance: Decimal = ZERO, with_jobs: Decimal = ZERO) -> dict:
        traits = self.traits(c)
        rng = self._rng(1, c)
        region = REGIONS[traits.currency]
        name = self.display_name(c, traits)
        given, family = self._person(c + 1 if c % 3 else c)
        created = START + SPAN * (0.6 * (c - 1) / max(self.customers, 1))
        created += timedelta(seconds=rng.randrange(0, 86400))
        updated = later(rng, created, days=400)
        city, region_code, postal = rng.choice(region.places)
        street = f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}"
        domain = _ascii_word(family) or "mail"
        address = {"Line1": street, "City": city, "CountrySubDivisionCode": region_code}
        address["PostalCode"] = postal
        taxable = traits.currency == "USD" and rng.random() < 0.6
        entity: dict[str, Any] = {
            "Id": str(c),
            "SyncToken": str(rng.randrange(0, 4)),
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"CreateTime": format_qbo(created), "LastUpdatedTime": format_qbo(updated)},
            "DisplayName": name,
            "GivenName": given,
            "FamilyName": family,
            "FullyQualifiedName": name,
            "PrintOnCheckName": name,
        }
        if c % 3 and not traits.is_job:
            entity["CompanyName"] = name
        if rng.random() < 0.3:
            entity["MiddleName"] = rng.choice("ABCDEFGHJKLMNPRSTW")
        if traits.is_job:
            parent_name = self.display_name(traits.parent)  # type: ignore[arg-type]
            entity["FullyQualifiedName"] = f"{parent_name}:{name}"
            entity["ParentRef"] = {"value": str(traits.parent)}
            entity["Level"] = 1
        if rng.random() < 0.9:
            entity["PrimaryEmailAddr"] = {
                "Address": f"{_ascii_word(given) or 'ap'}.{c}@{domain}.example"
            }
        phone = region.phone.format(area=rng.randrange(200, 990), line=rng.randrange(0, 10000))
        entity["PrimaryPhone"] = {"FreeFormNumber": phone}
        entity["BillAddr"] = {"Id": str(2 * c + 100), **address, "Country": region.country}
        if rng.random() < 0.8:
            entity["ShipAddr"] = {"Id": str(2 * c + 101), **address}
        entity.update(
            {
                "Active": traits.active,
                "Job": traits.is_job,
                "BillWithParent": traits.is_job and rng.random() < 0.5,
                "IsProject": False,
                "Taxable": taxable,
            }
        )
        if taxable:
            entity["DefaultTaxCodeRef"] = {"value": "2"}
        entity["Balance"] = json_amount(balance)
        entity["BalanceWithJobs"] = json_amount(with_jobs)
        entity["CurrencyRef"] = {"value": region.currency, "name": region.currency_name}
        entity["PreferredDeliveryMethod"] = rng.choice(("Email", "Print", "None"))
        if rng.random() < 0.2:
            entity["Notes"] = rng.choice(("Net 30 customer", "Call before delivery", "VIP"))
        entity["ClientEntityId"] = "0"
        entity["V4IDPseudonym"] = f"00{rng.getrandbits(160):040x}"
        return entity

    # Invoices ----------------------------------------------------------------------------

    def invoice(self, i: int) -> dict:
        rng = self._rng(2, i)
        c = rng.randrange(1, self.customers + 1)
        card = self.card(c)
        region = REGIONS[card.currency]
        currency = {"value": region.currency, "name": region.currency_name}
        slot = SPAN / max(self.invoices, 1)
        created = START + slot * (i - 1) + timedelta(seconds=rng.random() * slot.total_seconds())
        txn_date = (
            created.astimezone(PACIFIC) - timedelta(days=rng.choice((0, 0, 0, 1, 3)))
        ).date()
        term_id, term_name, term_days = rng.choice(TERMS)
        entity: dict[str, Any] = {
            "AllowIPNPayment": False,
            "AllowOnlinePayment": False,
            "AllowOnlineCreditCardPayment": False,
            "AllowOnlineACHPayment": False,
            "domain": "QBO",
            "sparse": False,
            "Id": str(i),
            "SyncToken": "0",
            "MetaData": {},
            "CustomField": [crew_field(rng)],
            "DocNumber": str(1000 + i),
            "TxnDate": txn_date.isoformat(),
            "CurrencyRef": currency,
            "LinkedTxn": [],
            "Line": sales_lines(rng, txn_date),
        }
        entity["TxnTaxDetail"] = tax_detail(rng)
        entity["CustomerRef"] = {"value": str(c), "name": card.name}
        entity["CustomerMemo"] = {"value": "Thank you for your business and have a great day!"}
        entity.update(_invoice_addresses(i, card))
        entity["SalesTermRef"] = {"value": term_id, "name": term_name}
        entity["DueDate"] = (txn_date + timedelta(days=term_days)).isoformat()
        if region.currency != "USD":
            rate = region.rate * (1 + Decimal(rng.randrange(-300, 300)) / 10000)
            entity["ExchangeRate"] = json_number(rate.quantize(Decimal("0.0001")))
        entity.update(
            {
                "ApplyTaxAfterDiscount": False,
                "PrintStatus": rng.choice(("NeedToPrint", "NotSet", "PrintComplete")),
                "EmailStatus": rng.choice(("NotSet", "EmailSent", "NeedToSend")),
            }
        )
        if card.email:
            entity["BillEmail"] = {"Address": card.email}
        entity["Deposit"] = 0
        recompute_invoice(entity)
        updated = _settle(rng, entity, i, created, card.active)
        entity["SyncToken"] = str(rng.randrange(0, 3)) if updated > created else "0"
        entity["MetaData"] = {
            "CreateTime": format_qbo(created),
            "LastUpdatedTime": format_qbo(updated),
        }
        return entity


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in folded if ch.isascii() and ch.isalpha())


def _is_special(c: int) -> bool:
    return c % 23 == 4


def tax_detail(rng: random.Random) -> dict:
    """A sales form's TxnTaxDetail: one percent-based tax line, its amounts still zero
    (amounts.recompute_invoice fills them)."""
    tax_percent = rng.choice(TAX_PERCENTS)
    tax_code, tax_rate = tax_ids(tax_percent)
    return {
        "TxnTaxCodeRef": {"value": tax_code},
        "TotalTax": 0,
        "TaxLine": [
            {
                "Amount": 0,
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {
                    "TaxRateRef": {"value": tax_rate},
                    "PercentBased": True,
                    "TaxPercent": json_number(tax_percent),
                    "NetAmountTaxable": 0,
                },
            }
        ],
    }


def later(rng: random.Random, start: datetime, *, days: int) -> datetime:
    """A later stamp, sometimes the same one, sometimes on a whole minute so ties occur."""
    draw = rng.random()
    if draw < 0.4:
        return start
    moment = start + timedelta(seconds=rng.randrange(1, days * 86400))
    if draw < 0.55:
        moment = moment.replace(second=0)
    return min(moment, ANCHOR)


def crew_field(rng: random.Random) -> dict:
    field = {"DefinitionId": "1", "Name": "Crew #", "Type": "StringType"}
    if rng.random() < 0.7:
        field["StringValue"] = str(rng.randrange(1, 120))
    return field


def sales_lines(rng: random.Random, txn_date: date) -> list[dict]:
    lines: list[dict] = []
    count = rng.choice((1, 1, 2, 2, 3, 4, 6, 9))
    for number in range(1, count + 1):
        item_id, item_name, price = rng.choice(ITEMS)
        qty = rng.choice((1, 1, 2, 3, 4, 5, 10, 12))
        detail: dict[str, Any] = {
            "ItemRef": {"value": item_id, "name": item_name},
            "UnitPrice": json_number(price),
            "Qty": qty,
            "TaxCodeRef": {"value": "TAX" if rng.random() < 0.6 else "NON"},
        }
        if rng.random() < 0.3:
            detail["ServiceDate"] = (txn_date - timedelta(days=rng.randrange(0, 5))).isoformat()
        lines.append(
            {
                "Id": str(number),
                "LineNum": number,
                "Description": item_name,
                "Amount": json_amount(cents(price * qty)),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": detail,
            }
        )
    if rng.random() < 0.9:
        lines.append({"Amount": 0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    draw = rng.random()
    if draw < 0.1:
        percent = rng.choice((5, 10, 15))
        lines.append(_discount({"PercentBased": True, "DiscountPercent": percent}, 0))
    elif draw < 0.15:
        lines.append(_discount({"PercentBased": False}, rng.choice((5.0, 10.0, 25.0))))
    return lines


def _discount(detail: dict, amount: float) -> dict:
    detail["DiscountAccountRef"] = {"value": "86", "name": "Discounts given"}
    return {"Amount": amount, "DetailType": "DiscountLineDetail", "DiscountLineDetail": detail}


def _invoice_addresses(i: int, card: Card) -> dict:
    block = {"Id": str(1_000_000 + i), "Line1": card.name, "Line2": card.line1}
    block["Line3"] = f"{card.city}, {card.region}  {card.postal}"
    addresses = {"BillAddr": block}
    if card.ship_id is not None:
        addresses["ShipAddr"] = {
            "Id": card.ship_id,
            "Line1": card.line1,
            "City": card.city,
            "CountrySubDivisionCode": card.region,
            "PostalCode": card.postal,
        }
    return addresses


def _settle(rng: random.Random, invoice: dict, i: int, created: datetime, active: bool) -> datetime:
    """Pay some invoices in full or in part; returns the last update stamp.

    Inactive customers are fully paid, as QBO will not inactivate a customer with a
    balance.
    """
    total = Decimal(str(invoice["TotalAmt"]))
    draw = rng.random() if active else 0.0
    if draw >= 0.7 or total == 0:
        return later(rng, created, days=30)
    paid = total if draw < 0.5 else cents(total * Decimal(rng.randrange(10, 90)) / 100)
    invoice["Balance"] = json_amount(total - paid)
    invoice["LinkedTxn"] = [{"TxnId": str(5_000_000 + i), "TxnType": "Payment"}]
    return min(created + timedelta(seconds=rng.randrange(3600, 60 * 86400)), ANCHOR)
