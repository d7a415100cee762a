"""Money as QBO does it: Decimal to the cent inside, plain JSON numbers outside.

Invoices are recomputed here both by the generator and by writes, so a created or
updated invoice adds up the same way a generated one does.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal(0)


def to_decimal(value: Any) -> Decimal:
    """A Decimal from a JSON number or string, read through str so floats do not drift."""
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def json_amount(value: Decimal) -> float | int:
    """QBO's rendering of an amount: 275.0, 23.28, and a bare 0 for nothing."""
    if value == 0:
        return 0
    return float(cents(value))


def json_number(value: Decimal) -> float | int:
    """Quantities and prices: an int when whole (Qty 2, UnitPrice 150), else a float."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def recompute_invoice(invoice: dict[str, Any], *, paid: Decimal | None = None) -> None:
    """Make an invoice's lines, tax, total and balance add up, in place.

    TotalAmt = sales lines - discount + tax. Tax is TaxPercent of the lines coded TAX
    (QBO's default of tax before discount) when the tax line is percent based, else the
    TotalTax given. Balance is the total less what was already paid (`paid`), never
    below zero; Deposit counts as paid.
    """
    lines = invoice.setdefault("Line", [])
    subtotal = ZERO
    taxable = ZERO
    for line in lines:
        if line.get("DetailType") != "SalesItemLineDetail":
            continue
        detail = line.setdefault("SalesItemLineDetail", {})
        amount = _sales_line_amount(line, detail)
        line["Amount"] = json_amount(amount) if amount else 0.0
        subtotal += amount
        if (detail.get("TaxCodeRef") or {}).get("value") == "TAX":
            taxable += amount
    discount = _apply_discount(lines, subtotal)
    _set_subtotal_line(lines, subtotal)
    tax = _apply_tax(invoice, taxable)
    total = cents(subtotal - discount + tax)
    invoice["TotalAmt"] = float(total)
    deposit = to_decimal(invoice.get("Deposit"))
    already_paid = (paid or ZERO) + deposit
    invoice["Balance"] = json_amount(max(total - already_paid, ZERO))
    rate = invoice.get("ExchangeRate")
    if rate is not None:
        invoice["HomeTotalAmt"] = float(cents(total * to_decimal(rate)))


def _sales_line_amount(line: dict[str, Any], detail: dict[str, Any]) -> Decimal:
    if "Qty" in detail and "UnitPrice" in detail:
        return cents(to_decimal(detail["Qty"]) * to_decimal(detail["UnitPrice"]))
    return cents(to_decimal(line.get("Amount")))


def _apply_discount(lines: list[dict[str, Any]], subtotal: Decimal) -> Decimal:
    discount = ZERO
    for line in lines:
        if line.get("DetailType") != "DiscountLineDetail":
            continue
        detail = line.setdefault("DiscountLineDetail", {})
        if detail.get("PercentBased"):
            amount = cents(subtotal * to_decimal(detail.get("DiscountPercent")) / 100)
            line["Amount"] = json_amount(amount) if amount else 0.0
        else:
            amount = cents(to_decimal(line.get("Amount")))
        discount += amount
    return discount


def _set_subtotal_line(lines: list[dict[str, Any]], subtotal: Decimal) -> None:
    """QBO keeps exactly one SubTotalLineDetail line, after the sales lines."""
    for line in lines:
        if line.get("DetailType") == "SubTotalLineDetail":
            line["Amount"] = float(cents(subtotal))
            line.setdefault("SubTotalLineDetail", {})
            return


def _apply_tax(invoice: dict[str, Any], taxable: Decimal) -> Decimal:
    detail = invoice.get("TxnTaxDetail")
    if not isinstance(detail, dict):
        return ZERO
    tax_lines = detail.get("TaxLine") or []
    percent_lines = [
        line
        for line in tax_lines
        if (line.get("TaxLineDetail") or {}).get("PercentBased")
        and "TaxPercent" in line["TaxLineDetail"]
    ]
    if not percent_lines:
        tax = cents(to_decimal(detail.get("TotalTax")))
        detail["TotalTax"] = json_amount(tax)
        return tax
    tax = ZERO
    for line in percent_lines:
        rate = to_decimal(line["TaxLineDetail"]["TaxPercent"])
        amount = cents(taxable * rate / 100)
        line["Amount"] = json_amount(amount)
        line["TaxLineDetail"]["NetAmountTaxable"] = float(cents(taxable))
        tax += amount
    detail["TotalTax"] = json_amount(tax)
    return tax
