"""The company itself: its CompanyInfo and its Preferences, one row per realm.

Neither is ever deleted, and CDC's documentation does not list them among the entities it
tracks, so a sync reads each in full (one call) once a day, like the tax lists.
"""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.model import (
    COMMON,
    COMMON_FILTERABLE,
    Column,
    Entity,
    Kind,
    T,
)

COMPANY_INFO = Entity(
    name="CompanyInfo",
    table="company_info",
    description=(
        "One row per connected company: its name, legal name, address and contact details, "
        "and when its fiscal year starts."
    ),
    kind=Kind.NAME_LIST,
    cdc=False,
    columns=(
        *COMMON,
        Column("company_name", T.TEXT, ("CompanyName",), "The company's name"),
        Column("legal_name", T.TEXT, ("LegalName",), "The company's legal name"),
        Column("country", T.TEXT, ("Country",), "The country the company is in"),
        Column("email", T.TEXT, ("Email", "Address"), "The company's email address"),
        Column("phone", T.TEXT, ("PrimaryPhone", "FreeFormNumber"), "The company's phone"),
        Column("web_address", T.TEXT, ("WebAddr", "URI"), "The company's website"),
        Column("city", T.TEXT, ("CompanyAddr", "City"), "City of the company's address"),
        Column(
            "region",
            T.TEXT,
            ("CompanyAddr", "CountrySubDivisionCode"),
            "State, province or region code of the company's address",
        ),
        Column("postal_code", T.TEXT, ("CompanyAddr", "PostalCode"), "Postal code of the address"),
        Column(
            "fiscal_year_start_month",
            T.TEXT,
            ("FiscalYearStartMonth",),
            "The month the fiscal year starts, such as January",
        ),
        Column(
            "company_start_date",
            T.DATE,
            ("CompanyStartDate",),
            "The date the company started using QuickBooks",
        ),
    ),
    filterable=COMMON_FILTERABLE,
)

PREFERENCES = Entity(
    name="Preferences",
    table="preferences",
    description=(
        "One row per connected company: the settings that change how its figures read, "
        "such as the home currency and whether classes and locations are tracked."
    ),
    kind=Kind.NAME_LIST,
    cdc=False,
    columns=(
        *COMMON,
        Column(
            "home_currency",
            T.TEXT,
            ("CurrencyPrefs", "HomeCurrency", "value"),
            "The currency the books are kept in; home_* amounts are in it",
        ),
        Column(
            "multi_currency_enabled",
            T.BOOLEAN,
            ("CurrencyPrefs", "MultiCurrencyEnabled"),
            "Whether transactions may be in other currencies than the home one",
        ),
        Column(
            "fiscal_year_start_month",
            T.TEXT,
            ("AccountingInfoPrefs", "FirstMonthOfFiscalYear"),
            "The month the fiscal year starts",
        ),
        Column(
            "class_tracking_per_txn",
            T.BOOLEAN,
            ("AccountingInfoPrefs", "ClassTrackingPerTxn"),
            "Whether a class is set once per transaction",
        ),
        Column(
            "class_tracking_per_line",
            T.BOOLEAN,
            ("AccountingInfoPrefs", "ClassTrackingPerTxnLine"),
            "Whether a class is set on each line",
        ),
        Column(
            "track_departments",
            T.BOOLEAN,
            ("AccountingInfoPrefs", "TrackDepartments"),
            "Whether transactions carry a location (department)",
        ),
        Column(
            "department_terminology",
            T.TEXT,
            ("AccountingInfoPrefs", "DepartmentTerminology"),
            "What the company calls locations, such as Location, Business or Store",
        ),
        Column(
            "using_sales_tax",
            T.BOOLEAN,
            ("TaxPrefs", "UsingSalesTax"),
            "Whether the company charges sales tax",
        ),
        Column(
            "custom_txn_numbers",
            T.BOOLEAN,
            ("SalesFormsPrefs", "CustomTxnNumbers"),
            "Whether sales forms take numbers typed by hand",
        ),
    ),
    filterable=COMMON_FILTERABLE,
)
