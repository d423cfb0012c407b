"""Learned risks on the clinic's own scale (docs/rules.md, "No-show risk: one scale").

The no-show model writes calibrated probabilities, far under the 0.6 made for typed risks;
a learned risk is judged by where it stands among the clinic's scored patients instead, so a
clinic that turns the model on keeps filling slots, highest risks first.
"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.explanation import explain
from backfill.models import FreedSlot
from backfill.rules import Rules, SlotFacts
from clinic import risk_scale
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import Patient, Specialty
from demo.no_show_history import logistic
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.no_show import risk_quantiles, train_and_apply
from tests.no_show_history import generate_history
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

MANUAL = Patient.RiskSource.MANUAL


def rarely_missed(visit):
    """A clinic missing about one visit in eight, more so for patients who missed before."""
    return logistic(-3.0 + 3.5 * visit.past.no_show_rate + 0.4 * math.log1p(visit.lead_days))


def cancel(appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    slot = FreedSlot.objects.get(appointment=appointment)
    slot.refresh_from_db()
    return slot


@pytest.mark.django_db
def test_a_clinic_whose_waiting_patients_all_have_learned_risks_still_fills_a_freed_slot(
    django_capture_on_commit_callbacks,
):
    generate_history(rarely_missed)
    assert train_and_apply().in_use is not None
    # As the clinic that found the model turned its backfill off: 40 waiting, learned risks up to 0.40.
    patients = list(Patient.objects.filter(no_show_risk__lte=0.4).order_by("pk"))
    specialty = Specialty.objects.get(name="Orthopedic PT")
    waiting = [WaitlistEntryFactory(patient=patient, specialty=specialty) for patient in patients[:40]]
    risks = [entry.patient.no_show_risk for entry in waiting]
    appointment = AppointmentFactory(provider=specialty.providers.first(), patient=patients[-1])

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    assert len(waiting) == 40 and all(entry.patient.risk_is_learned for entry in waiting)
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient.no_show_risk == max(risks)


@pytest.mark.django_db
def test_typed_and_learned_risks_rank_in_one_order(orthopedic_provider, django_capture_on_commit_callbacks):
    learned_top = learned_patient(0.31, standing=0.95)  # ranks as 0.95 on the typed scale
    typed = PatientFactory(no_show_risk=0.85, no_show_risk_source=MANUAL)
    learned_middle = learned_patient(0.15, standing=0.6)
    for patient in (typed, learned_middle, learned_top):
        WaitlistEntryFactory(patient=patient, specialty=orthopedic_provider.specialty, preferred_location=None)

    slot = cancel(AppointmentFactory(provider=orthopedic_provider), django_capture_on_commit_callbacks)

    ranked = list(slot.match_logs.order_by("rank").values_list("patient", "breakdown__no_show_risk"))
    assert ranked == [(learned_top.pk, 40), (typed.pk, 40), (learned_middle.pk, 30)]


@pytest.mark.django_db
def test_typed_risks_keep_the_absolute_thresholds(orthopedic_provider, django_capture_on_commit_callbacks):
    WaitlistEntryFactory(
        patient=PatientFactory(no_show_risk=0.59, no_show_risk_source=MANUAL), specialty=orthopedic_provider.specialty
    )

    slot = cancel(AppointmentFactory(provider=orthopedic_provider), django_capture_on_commit_callbacks)

    assert slot.status == FreedSlot.Status.NO_MATCH


@pytest.mark.django_db
def test_the_explanation_says_where_a_learned_risk_stands(orthopedic_provider):
    high = WaitlistEntryFactory(patient=learned_patient(0.31, standing=0.9), specialty=orthopedic_provider.specialty)
    low = WaitlistEntryFactory(patient=learned_patient(0.05, standing=0.2), specialty=orthopedic_provider.specialty)
    typed = WaitlistEntryFactory(
        patient=PatientFactory(no_show_risk=0.56, no_show_risk_source=MANUAL), specialty=orthopedic_provider.specialty
    )
    start = next_weekday_at()
    slot = SlotFacts(
        orthopedic_provider.pk, orthopedic_provider.specialty_id, orthopedic_provider.location_id, start, start
    )

    assert explain(high, slot).words["no_show_risk"] == "no-show risk 0.31, in this clinic's highest fifth: +40"
    assert explain(low, slot).reasons[0] == (
        "no-show risk 0.05, in this clinic's lower half, is under the minimum for learned risks (this clinic's median)"
    )
    assert explain(typed, slot).reasons[0] == "no-show risk 0.56 is under the minimum 0.6"


def learned_patient(risk, standing):
    return PatientFactory(no_show_risk=risk, no_show_risk_model=risk, no_show_risk_standing=standing)


@pytest.fixture
def orthopedic_provider():
    return ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory())


# --- the scale itself --------------------------------------------------------------------

CLINIC_ESTIMATES = [round(0.02 + 0.38 * (i / 399) ** 2, 3) for i in range(400)]  # median 0.115, max 0.40
QUANTILES = risk_quantiles(CLINIC_ESTIMATES)


# A clinic as the model rates one whose patients mostly have no history yet: 62% share one
# estimate (every patient with nothing to learn from), from the 10th to the 72nd percentile,
# and 14% another, from the 72nd to the 86th (docs/reference.md, "Learned risks and ties").
TIED_ESTIMATES = (
    [round(0.02 + 0.001 * i, 3) for i in range(40)]
    + [0.09] * 248
    + [0.25] * 56
    + [round(0.3 + 0.002 * i, 3) for i in range(56)]
)
TIED_QUANTILES = risk_quantiles(TIED_ESTIMATES)


def tiers_of(estimates, quantiles):
    """{estimate: (passes the floor, high points)} as the rules judge each learned risk."""
    rules = Rules()
    tiers = {}
    for estimate in estimates:
        ranking = risk_scale.ranking_risk_of_standing(risk_scale.standing_of(estimate, quantiles))
        tiers[estimate] = (ranking >= rules.MIN_NO_SHOW_RISK, ranking >= rules.HIGH_RISK_THRESHOLD)
    return tiers


def test_equal_estimates_share_the_tier_their_middle_falls_in():
    tiers = tiers_of(TIED_ESTIMATES, TIED_QUANTILES)
    admitted = sum(tiers[estimate][0] for estimate in TIED_ESTIMATES) / len(TIED_ESTIMATES)
    high = sum(tiers[estimate][1] for estimate in TIED_ESTIMATES) / len(TIED_ESTIMATES)

    # The block holding the median passes the floor whole, though its middle (41st) is under it.
    assert tiers[0.09] == (True, False)
    # The block from the 72nd to the 86th percentile stands at its middle, under the 80th: no +40.
    assert tiers[0.25] == (True, False)
    assert all(tiers[estimate] == (True, True) for estimate in TIED_ESTIMATES[-56:])
    assert admitted == 0.9 and high == 0.14  # not 0.28, as when a block took its highest percentile


@given(
    estimates=st.lists(
        st.one_of(st.sampled_from([0.05, 0.12, 0.12, 0.2, 0.31]), st.floats(0, 1).map(lambda x: round(x, 2))),
        min_size=20,
        max_size=300,
    )
)
def test_ties_never_split_a_tier_and_the_floor_leaves_out_at_most_half(estimates):
    quantiles = risk_quantiles(estimates)
    standings = sorted((estimate, risk_scale.standing_of(estimate, quantiles)) for estimate in estimates)
    floor = Rules().LEARNED_FLOOR_QUANTILE

    # One standing per estimate, rising with it.
    assert all(a[1] <= b[1] and (a[0] < b[0] or a[1] == b[1]) for a, b in zip(standings, standings[1:], strict=False))
    # Whoever the model rates as high as the median patient may be booked.
    assert sum(standing < floor for _, standing in standings) <= len(estimates) / 2
    for estimate in set(estimates):
        low = quantiles.index(estimate) if estimate in quantiles else None
        if low is None:
            continue
        high = len(quantiles) - 1 - quantiles[::-1].index(estimate)
        middle = (low + high) / 2 / risk_scale.QUANTILE_STEPS
        expected = max(middle, floor) if low <= floor * risk_scale.QUANTILE_STEPS <= high else middle
        assert risk_scale.standing_of(estimate, quantiles) == pytest.approx(expected)


def test_the_scale_names_where_each_tier_starts():
    assert risk_scale.lowest_estimate_standing_at(0.5, TIED_QUANTILES) == (0.09, True)
    assert risk_scale.lowest_estimate_standing_at(0.8, TIED_QUANTILES) == (0.25, False)


@given(low=st.floats(0, 1), high=st.floats(0, 1))
def test_a_higher_learned_risk_never_ranks_lower(low, high):
    low, high = sorted((low, high))
    standing = (risk_scale.standing_of(low, QUANTILES), risk_scale.standing_of(high, QUANTILES))
    assert standing[0] <= standing[1]
    assert risk_scale.ranking_risk_of_standing(standing[0]) <= risk_scale.ranking_risk_of_standing(standing[1])


@given(standing=st.floats(0, 1))
def test_each_thresholds_quantile_lands_on_the_threshold(standing):
    rules = Rules()
    ranking = risk_scale.ranking_risk_of_standing(standing)
    assert (ranking >= rules.MIN_NO_SHOW_RISK) == (standing >= rules.LEARNED_FLOOR_QUANTILE)
    assert (ranking >= rules.HIGH_RISK_THRESHOLD) == (standing >= rules.LEARNED_HIGH_RISK_QUANTILE)


@pytest.mark.parametrize("estimates", [CLINIC_ESTIMATES, TIED_ESTIMATES])
def test_at_least_half_the_clinic_passes_the_floor_and_about_a_fifth_gets_the_high_points(estimates):
    quantiles = risk_quantiles(estimates)
    rankings = [risk_scale.ranking_risk_of_standing(risk_scale.standing_of(r, quantiles)) for r in estimates]

    assert sum(ranking >= 0.6 for ranking in rankings) >= len(rankings) / 2
    assert 0.1 <= sum(ranking >= 0.8 for ranking in rankings) / len(rankings) <= 0.25


def test_quantiles_that_do_not_rise_with_their_thresholds_are_refused(settings):
    config = {**settings.BACKFILL, "LEARNED_MEDIUM_RISK_QUANTILE": 0.6}  # the floor is also the medium threshold

    with pytest.raises(ValueError, match="must rise with the thresholds"):
        risk_scale.knots(config)


def test_new_entries_copy_the_ranking_risk(db):
    entry = WaitlistEntryFactory(patient=learned_patient(0.2, standing=0.8))

    assert WaitlistEntry.objects.get(pk=entry.pk).ranking_risk == 0.8
