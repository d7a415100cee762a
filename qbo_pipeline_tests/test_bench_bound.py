"""The sync benchmark's bound: hand-computed schedules under QBO's three limits."""

import pytest

from benchmarks.bound import data_pages, minimum_seconds, needed_requests


def test_one_request_takes_its_latency():
    assert minimum_seconds(1, 0.3) == pytest.approx(0.3)


def test_no_request_takes_no_time():
    assert minimum_seconds(0, 0.3) == 0.0


def test_the_second_window_binds_under_500_requests():
    # 10 start at 0 s, 10 at 1 s, ... requests 60 and 61 at 6 s, done at 6.3 s.
    assert minimum_seconds(62, 0.3) == pytest.approx(6.3)
    # Requests 300 and 301 start at 30 s.
    assert minimum_seconds(302, 0.3) == pytest.approx(30.3)
    # The 500th starts at 49 s: the minute window never fills.
    assert minimum_seconds(500, 0.3) == pytest.approx(49.3)


def test_the_minute_window_binds_past_500_requests():
    # 500 in 0..49 s; the 501st waits for the first to leave the window at 60 s.
    assert minimum_seconds(501, 0.3) == pytest.approx(60.3)
    # 500..999 start at 60..109 s; 1000 and 1001 wait for the 500th's start + 60 s.
    assert minimum_seconds(1000, 0.3) == pytest.approx(109.3)
    assert minimum_seconds(1002, 0.3) == pytest.approx(120.3)


def test_in_flight_binds_when_an_answer_takes_longer_than_a_second():
    # 10 at 0 s; the next 10 wait for those to end at 2 s, not for the second at 1 s.
    assert minimum_seconds(11, 2.0) == pytest.approx(4.0)
    assert minimum_seconds(30, 2.0) == pytest.approx(6.0)
    # With 20 in flight the second window binds again: 10 at 0 s, 10 at 1 s, 10 at 2 s.
    assert minimum_seconds(30, 2.0, in_flight=20) == pytest.approx(4.0)


def test_each_limit_is_a_parameter():
    # 5 a second: 12 requests start at 0, 0, ..., 1 (5 times), 2, 2.
    assert minimum_seconds(12, 0.1, per_second=5) == pytest.approx(2.1)
    # 20 a minute, 10 a second: 0..9 at 0 s, 10..19 at 1 s, 20 at 60 s.
    assert minimum_seconds(21, 0.1, per_minute=20) == pytest.approx(60.1)


def test_needed_requests_add_one_count_per_entity_of_several_pages():
    small = {"Customer": 20_000, "Invoice": 40_000}
    assert data_pages(small) == 60
    assert needed_requests(small) == 62
    assert needed_requests({"Customer": 100_000, "Invoice": 200_000}) == 302
    assert needed_requests({"Customer": 600_000, "Invoice": 400_000}) == 1002


def test_a_page_or_less_needs_no_count_and_an_empty_entity_one_answer():
    assert needed_requests({"Customer": 1000}) == 1
    assert needed_requests({"Customer": 1001}) == 3
    assert needed_requests({"Customer": 0, "Invoice": 999}) == 2
    assert needed_requests({"Customer": 2500}, page=500) == 6
