"""Timestamps are instants across DST; sync queries never miss inactive rows."""

from datetime import UTC, datetime

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.query import select_page, sync_filter
from qbo_pipeline.quickbooks.timestamps import format_qbo, parse_instant


@pytest.mark.parametrize(
    "text",
    ["2025-01-06T16:40:55-08:00", "2025-01-06T16:40:55-0800", "2025-01-07T00:40:55Z"],
)
def test_every_offset_form_is_the_same_instant(text):
    assert parse_instant(text) == datetime(2025, 1, 7, 0, 40, 55, tzinfo=UTC)


def test_bare_date_is_pacific_midnight():
    assert parse_instant("2025-07-01") == datetime(2025, 7, 1, 7, tzinfo=UTC)


def test_dst_offsets_sort_as_instants_not_strings():
    # 01:30 PST is an hour after 01:30 PDT on the night the clocks go back.
    pdt, pst = "2025-11-02T01:30:00-07:00", "2025-11-02T01:30:00-08:00"
    assert parse_instant(pst) > parse_instant(pdt)


def test_format_uses_the_pacific_offset_of_the_day():
    assert format_qbo(datetime(2025, 7, 1, 12, tzinfo=UTC)) == "2025-07-01T05:00:00-07:00"
    assert format_qbo(datetime(2025, 1, 1, 12, tzinfo=UTC)) == "2025-01-01T04:00:00-08:00"


def test_bad_timestamp_is_one_clear_line():
    with pytest.raises(ValueError, match="not a QuickBooks timestamp"):
        parse_instant("yesterday")


def test_name_list_sync_includes_inactive_rows():
    assert sync_filter(CUSTOMER, None) == "Active IN (true, false)"
    assert sync_filter(INVOICE, None) == ""


def test_incremental_filter_keeps_the_offset():
    since = datetime(2025, 1, 7, 0, 40, 55, tzinfo=UTC)
    assert sync_filter(INVOICE, since) == (
        "MetaData.LastUpdatedTime >= '2025-01-06T16:40:55-08:00'"
    )


def test_page_statement_and_limits():
    assert select_page(INVOICE, "", start_position=1001) == (
        "SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1001 MAXRESULTS 1000"
    )
    with pytest.raises(ValueError, match="max_results"):
        select_page(INVOICE, "", start_position=1, max_results=1001)
