"""The manager's pure timing rules, with plain numbers and no event loop."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openticket_async import HoldPolicy, Reservation
from openticket_async._planning import (
    LatencyTracker,
    drop_time,
    earliest_renew_at,
    local_deadline,
    plausible,
    renew_at,
    retry_fits,
    warn_at,
)

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def reservation(deadline: float) -> Reservation:
    return Reservation(
        guid="r",
        shop_guid="s",
        ticket_guid="t",
        event_date_guid=None,
        products=(),
        reserved_at=WHEN,
        expires_at=WHEN,
        deadline=deadline,
    )


def test_local_deadline_and_drop_time_sit_a_safety_margin_around_the_server_expiry() -> None:
    policy = HoldPolicy(safety_margin=2)
    r = reservation(480.0)
    assert local_deadline(r, policy) == 478.0
    assert drop_time(r, policy) == 482.0
    assert warn_at(r, HoldPolicy(safety_margin=2, warn_before=60)) == 418.0


@given(
    deadline=st.floats(min_value=0, max_value=1e6),
    renew_before=st.floats(min_value=0, max_value=600),
    jitter=st.floats(min_value=0, max_value=60),
    p99=st.floats(min_value=0, max_value=30),
    seed=st.integers(),
)
def test_jitter_only_ever_moves_a_renewal_earlier(
    deadline: float, renew_before: float, jitter: float, p99: float, seed: int
) -> None:
    policy = HoldPolicy(renew_before=renew_before, renew_jitter=jitter)
    r = reservation(deadline)
    latest = local_deadline(r, policy) - max(renew_before, 4 * p99)
    planned = renew_at(r, policy, p99, random.Random(seed))
    assert planned <= latest
    assert planned >= latest - jitter


def test_jitter_is_a_random_fraction_of_renew_jitter() -> None:
    policy = HoldPolicy(renew_before=60, renew_jitter=5, safety_margin=2)
    fraction = random.Random(7).random()
    assert renew_at(reservation(480.0), policy, 0.0, random.Random(7)) == pytest.approx(
        478.0 - 60 - 5 * fraction
    )


def test_the_renewal_lead_grows_with_observed_latency() -> None:
    policy = HoldPolicy(renew_before=10, renew_jitter=0, safety_margin=0)
    r = reservation(100.0)
    assert renew_at(r, policy, 0.0) == 90.0
    assert renew_at(r, policy, 5.0) == 80.0  # 4 x p99 = 20 s lead


def test_a_retry_fits_only_if_it_can_finish_before_the_deadline() -> None:
    assert retry_fits(now=0, wait=10, deadline=20, latency_p99=1)
    assert not retry_fits(now=0, wait=19, deadline=20, latency_p99=1)
    assert not retry_fits(now=0, wait=25, deadline=20, latency_p99=0)


def test_a_retry_leaves_twice_the_p99_latency_before_the_deadline() -> None:
    assert not retry_fits(now=0, wait=17, deadline=20, latency_p99=1.5)
    assert retry_fits(now=0, wait=16.9, deadline=20, latency_p99=1.5)


def test_with_no_latency_known_a_retry_may_end_just_before_the_deadline() -> None:
    assert retry_fits(now=0, wait=19.5, deadline=20, latency_p99=0.0)


def test_a_negative_latency_gives_a_retry_no_extra_time() -> None:
    assert not retry_fits(now=0, wait=20.5, deadline=20, latency_p99=-3.0)  # a clock hiccup


def test_a_server_expiry_too_soon_after_the_send_runs_on_the_local_ttl() -> None:
    policy = HoldPolicy(min_server_ttl=120)
    fixed = plausible(reservation(100.0 + 30), sent=100.0, ttl=480.0, policy=policy)
    assert fixed is not None
    assert fixed.deadline == 580.0


@pytest.mark.parametrize("server_ttl", [120.0, 300.0])
def test_a_server_expiry_long_enough_after_the_send_is_trusted(server_ttl: float) -> None:
    policy = HoldPolicy(min_server_ttl=120)
    assert plausible(reservation(100.0 + server_ttl), sent=100.0, ttl=480.0, policy=policy) is None


def test_a_floor_above_the_ttl_still_trusts_an_expiry_one_ttl_after_the_send() -> None:
    # min_server_ttl beyond the TTL itself cannot ask more than the TTL of a server
    policy = HoldPolicy(min_server_ttl=600)
    assert plausible(reservation(100.0 + 480), sent=100.0, ttl=480.0, policy=policy) is None
    assert plausible(reservation(100.0 + 479), sent=100.0, ttl=480.0, policy=policy) is not None


def test_latency_tracker_reports_the_p99_of_its_window() -> None:
    tracker = LatencyTracker(window=100, every=1)
    assert tracker.p99 == 0.0
    for value in range(100):
        tracker.record(value / 100)
    assert tracker.p99 == 0.99
    for _ in range(100):
        tracker.record(0.01)  # old samples leave the window
    assert tracker.p99 == 0.01
    tracker.record(-1.0)  # a clock hiccup counts as zero, not as a negative latency
    assert tracker.p99 == 0.01


def test_a_new_latency_tracker_reports_its_p99_from_the_first_sample() -> None:
    tracker = LatencyTracker()
    tracker.record(0.5)
    assert tracker.p99 == 0.5


def test_a_latency_tracker_keeps_the_latest_256_samples_by_default() -> None:
    tracker = LatencyTracker()
    for _ in range(300):
        tracker.record(0.01)
    assert len(tracker) == 256


def test_latency_tracker_counts_a_negative_latency_as_zero() -> None:
    tracker = LatencyTracker(window=1, every=1)
    tracker.record(-0.5)  # a clock hiccup
    assert tracker.p99 == 0.0


def test_latency_tracker_p99_of_200_samples_is_their_second_largest() -> None:
    tracker = LatencyTracker(window=256, every=1)
    for value in range(200):
        tracker.record(value / 100)
    assert tracker.p99 == 1.98  # int(0.99 * 200) = 198 samples lie at or below it


def test_latency_tracker_recomputes_its_p99_only_every_few_samples() -> None:
    tracker = LatencyTracker()  # the defaults: every 32 samples, over a window of 256
    for _ in range(64):
        tracker.record(0.01)
    assert tracker.p99 == 0.01
    for _ in range(31):
        tracker.record(1.0)
    assert tracker.p99 == 0.01  # not yet: 31 fresh samples
    tracker.record(1.0)
    assert tracker.p99 == 1.0


@given(
    deadline=st.floats(min_value=0, max_value=1e6),
    renew_before=st.floats(min_value=0, max_value=600),
    jitter=st.floats(min_value=0, max_value=60),
    p99=st.floats(min_value=0, max_value=30),
    seed=st.integers(),
)
def test_no_renewal_starts_before_the_earliest_renewal_time(
    deadline: float, renew_before: float, jitter: float, p99: float, seed: int
) -> None:
    policy = HoldPolicy(renew_before=renew_before, renew_jitter=jitter)
    r = reservation(deadline)
    earliest = earliest_renew_at(r, policy, p99)
    assert renew_at(r, policy, p99, random.Random(seed)) >= earliest


def test_the_earliest_renewal_time_is_the_renewal_lead_plus_the_whole_jitter() -> None:
    policy = HoldPolicy(renew_before=60, renew_jitter=5, safety_margin=2)
    r = reservation(480.0)
    assert earliest_renew_at(r, policy, 0.0) == 478.0 - 60 - 5
    assert earliest_renew_at(r, policy, 20.0) == 478.0 - 80 - 5  # 4 x p99 = 80 s lead
    steady = HoldPolicy(renew_before=60, renew_jitter=0, safety_margin=2)
    assert earliest_renew_at(r, steady, 20.0) == renew_at(r, steady, 20.0)
