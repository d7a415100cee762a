"""OAuth bookkeeping as plain objects: codes, rotation policies, revocation, expiry."""

from __future__ import annotations

import pytest

from qbo_pipeline.emulator.tokens import CODE_TTL, HARD_LIFETIME, InvalidGrant, TokenAuthority

T0 = 1_800_000_000.0
DAY = 86400


def _grant(authority: TokenAuthority, now: float = T0):
    code = authority.issue_code(
        client_id="app", redirect_uri="http://cb", realm_id="1", scopes=("x",), now=now
    )
    return authority.exchange_code(code, client_id="app", redirect_uri="http://cb", now=now)


def test_codes_are_single_use_bound_and_short_lived() -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY)
    code = authority.issue_code(
        client_id="app", redirect_uri="http://cb", realm_id="1", scopes=(), now=T0
    )
    with pytest.raises(InvalidGrant):
        authority.exchange_code(code, client_id="other", redirect_uri="http://cb", now=T0)
    authority.exchange_code(code, client_id="app", redirect_uri="http://cb", now=T0)
    with pytest.raises(InvalidGrant, match="already been used"):
        authority.exchange_code(code, client_id="app", redirect_uri="http://cb", now=T0)
    late = authority.issue_code(
        client_id="app", redirect_uri="http://cb", realm_id="1", scopes=(), now=T0
    )
    with pytest.raises(InvalidGrant, match="expired"):
        authority.exchange_code(
            late, client_id="app", redirect_uri="http://cb", now=T0 + CODE_TTL + 1
        )
    wrong = authority.issue_code(
        client_id="app", redirect_uri="http://cb", realm_id="1", scopes=(), now=T0
    )
    with pytest.raises(InvalidGrant, match="redirect_uri"):
        authority.exchange_code(wrong, client_id="app", redirect_uri="http://elsewhere", now=T0)


def test_intuit_rotation_reuses_the_value_for_a_day_then_keeps_the_old_one_a_day() -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY, rotation="intuit")
    first = _grant(authority)
    again = authority.refresh(first.refresh_token, client_id="app", now=T0 + 10)
    assert again.refresh_token == first.refresh_token
    assert again.access_token != first.access_token
    assert again.refresh_expires_in == 100 * DAY - 10  # same token, same window
    last_same = authority.refresh(first.refresh_token, client_id="app", now=T0 + DAY - 1)
    assert last_same.refresh_token == first.refresh_token

    second = authority.refresh(first.refresh_token, client_id="app", now=T0 + DAY)
    assert second.refresh_token != first.refresh_token
    assert second.refresh_expires_in == 100 * DAY
    # The replaced value still works for a day, and answers with the current value.
    during_grace = authority.refresh(first.refresh_token, client_id="app", now=T0 + 2 * DAY - 1)
    assert during_grace.refresh_token == second.refresh_token
    with pytest.raises(InvalidGrant):
        authority.refresh(first.refresh_token, client_id="app", now=T0 + 2 * DAY)
    authority.refresh(second.refresh_token, client_id="app", now=T0 + 2 * DAY)


def test_strict_rotation_kills_the_previous_token_at_once() -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY, rotation="strict")
    first = _grant(authority)
    second = authority.refresh(first.refresh_token, client_id="app", now=T0 + 10)
    with pytest.raises(InvalidGrant):
        authority.refresh(first.refresh_token, client_id="app", now=T0 + 10)
    authority.refresh(second.refresh_token, client_id="app", now=T0 + 11)


@pytest.mark.parametrize("rotation", ["intuit", "strict"])
def test_refresh_window_rolls_and_hard_expiry_counts_down(rotation: str) -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY, rotation=rotation)
    first = _grant(authority)
    assert first.refresh_expires_in == 100 * DAY
    later = authority.refresh(first.refresh_token, client_id="app", now=T0 + 50 * DAY)
    assert later.refresh_token != first.refresh_token
    assert later.refresh_expires_in == 100 * DAY
    assert later.hard_expires_in == first.hard_expires_in - 50 * DAY
    with pytest.raises(InvalidGrant, match="expired"):
        authority.refresh(later.refresh_token, client_id="app", now=T0 + 150 * DAY)


def test_hard_expiry_ends_the_grant_however_often_it_is_refreshed() -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY, rotation="strict")
    issued = _grant(authority)
    now = T0
    while now + 90 * DAY < T0 + HARD_LIFETIME:
        now += 90 * DAY
        issued = authority.refresh(issued.refresh_token, client_id="app", now=now)
        assert issued.refresh_expires_in == min(100 * DAY, issued.hard_expires_in)
    assert issued.hard_expires_in == T0 + HARD_LIFETIME - now
    with pytest.raises(InvalidGrant, match="expired"):
        authority.refresh(issued.refresh_token, client_id="app", now=T0 + HARD_LIFETIME)


def test_revoking_any_token_ends_the_whole_grant() -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY)
    issued = _grant(authority)
    other = _grant(authority)
    assert not authority.revoke(issued.access_token, client_id="someone-else")
    assert authority.revoke(issued.access_token, client_id="app")
    with pytest.raises(InvalidGrant):
        authority.refresh(issued.refresh_token, client_id="app", now=T0)
    assert authority.access(issued.access_token, T0) == (None, "Token invalid")
    assert authority.access(other.access_token, T0)[0] is not None


def test_access_tokens_expire() -> None:
    authority = TokenAuthority(access_ttl=3600, refresh_ttl=100 * DAY)
    issued = _grant(authority)
    assert authority.access(issued.access_token, T0 + 3599)[0] is not None
    assert authority.access(issued.access_token, T0 + 3600) == (None, "Token expired")
    assert authority.access("nonsense", T0) == (None, "Token invalid")
    fresh = _grant(authority, T0 + 100)
    authority.expire_access_tokens(T0 + 200)
    assert authority.access(fresh.access_token, T0 + 200)[1] == "Token expired"
