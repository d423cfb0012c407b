"""The indexed ranking picks exactly whom scoring the whole waitlist in Python would pick.

`rank_candidates` reads only the head of a few groups of the waitlist; `rank_by_full_scan`
is the seed's approach (load every waiting entry, score each with `score_entry`). Over
random small waitlists and several BACKFILL settings both must agree on the best
candidates, in order, with their scores by rule and who is already booked. Runs on SQLite
and, in the PostgreSQL pass, against PostgreSQL.
"""

from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from backfill.explanation import explain
from backfill.matching import Rules, SlotFacts, busy_patients, rank_by_full_scan, rank_candidates
from backfill.rules import RULES, Filter, Rule, Tier
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.fields import WEEKDAYS
from clinic.models import InsurancePlan, Patient
from clinic.risk_scale import standing_of
from scheduling.models import Appointment
from scheduling.no_show import risk_quantiles
from waitlist.models import WaitlistEntry

SLOT_MONDAY = date(2031, 3, 3)
RISKS = [0.95, 0.8, 0.7, 0.6, 0.81, 0.79, 0.61, 1.0, 0.59, 0.3, 0.0]
# Learned risks stand on a clinic's scale (clinic/risk_scale.py): this clinic's estimates
# run from 0.02 to 0.40, with two blocks of equal estimates (0.09 from the 10th to the 72nd
# percentile, 0.25 from the 72nd to the 86th) as when most patients have no history. Picked
# at, just under and between the percentiles the thresholds stand for and on the blocks, so
# learned and typed risks meet at the tier bounds.
QUANTILES = risk_quantiles(
    [round(0.02 + 0.001 * i, 3) for i in range(40)]
    + [0.09] * 248
    + [0.25] * 56
    + [round(0.3 + 0.002 * i, 3) for i in range(56)]
)
LEARNED_RISKS = [QUANTILES[k] for k in (0, 9, 30, 50, 79, 80, 87, 90, 100)] + [0.0895, 0.2505, 0.01]
WINDOWS = [["08:00-12:00"], ["12:00-17:00"], ["09:00-10:00", "15:00-18:00"], ["10:30-11:30"]]
# Each entry is eligible but for at most one of these (random ones would rarely leave
# two eligible entries in one group, and the interesting cases need that).
SPOILERS = [
    "opted_out",
    "texts_without_number",
    "other_specialty",
    "removed",
    "booked",
    "starts_later",
    "ended",
    "other_provider",
]
SETTINGS_VARIANTS = [
    {},
    {"REQUIRE_AVAILABILITY": False},
    {"TIME_OF_DAY_POINTS": 10, "MIN_SCORE": 70},
    {"MIN_NO_SHOW_RISK": 0.0, "MIN_SCORE": 40},
    {"MIN_NO_SHOW_RISK": 0.0, "REQUIRE_AVAILABILITY": False, "LOCATION_POINTS": 0, "MIN_SCORE": 20},
]

entries = st.lists(
    st.fixed_dictionaries(
        {
            "risk": st.sampled_from(RISKS),
            "learned": st.one_of(st.none(), st.sampled_from(LEARNED_RISKS)),  # None: the risk is typed
            "location": st.sampled_from([0, 1, None]),
            "days": st.one_of(st.just([]), st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=6, unique=True)),
            "windows": st.one_of(st.just([]), st.sampled_from(WINDOWS)),
            "own_provider": st.booleans(),
            "dated": st.booleans(),
            "reason": st.sampled_from(WaitlistEntry.Reason.values),
            "minutes_waiting": st.integers(0, 3),
            "busy": st.sampled_from([None, None, "active", "cancelled"]),
            "spoiler": st.one_of(st.none(), st.sampled_from(SPOILERS)),
            "plan": st.sampled_from([None, 0, 1]),  # None: self-pay
            # Opted out of email but agreed to texts: still reachable, so still bookable.
            "texts_only": st.booleans(),
        }
    ),
    max_size=12,
)


class RankingEquivalence(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.specialty = SpecialtyFactory(name="Orthopedic PT")
        cls.other_specialty = SpecialtyFactory(name="Pediatric PT")
        # Two clocks: New York (the clinic's) and Los Angeles, three hours behind.
        cls.locations = [
            LocationFactory(name="Downtown"),
            LocationFactory(name="Santa Monica", time_zone="America/Los_Angeles"),
        ]
        cls.providers = [ProviderFactory(specialty=cls.specialty, location=location) for location in cls.locations]
        cls.plans = [
            InsurancePlan.objects.create(name="Aetna Choice", payer="Aetna"),
            InsurancePlan.objects.create(name="Medicare Part B", payer="Medicare"),
        ]
        cls.providers[1].accepted_insurance_plans.set([cls.plans[0]])  # the first takes every plan

    @hypothesis_settings(max_examples=200, deadline=None)
    @given(
        waitlist=entries,
        provider=st.sampled_from([0, 1]),
        day_offset=st.integers(0, 6),
        hour=st.sampled_from([10, 8, 11, 15, 17]),
        freed_by=st.integers(-1, 11),
        overrides=st.sampled_from(SETTINGS_VARIANTS),
        pool=st.sampled_from([1, 2, 10]),
    )
    def test_it_ranks_like_scoring_the_whole_waitlist(
        self, waitlist, provider, day_offset, hour, freed_by, overrides, pool
    ):
        provider = self.providers[provider]
        start = self.local(provider, SLOT_MONDAY + timedelta(days=day_offset), hour)
        patients = [self.add_entry(spec, provider, start) for spec in waitlist]
        freed_by = patients[freed_by].pk if 0 <= freed_by < len(patients) else None
        slot = SlotFacts(
            provider.pk,
            provider.specialty_id,
            provider.location_id,
            start,
            start + timedelta(minutes=45),
            freed_by,
            provider.location.time_zone,
        )
        rules = Rules({**settings.BACKFILL, **overrides})

        fast = rank_candidates(slot, rules, pool=pool)
        full = rank_by_full_scan(slot, rules)

        best = min(pool, len(full))
        assert summary(fast[:best]) == summary(full[:best])
        assert len(fast) >= best
        assert explained_in_order(slot, rules) == bookable(rank_candidates(slot, rules, pool=100))

    @hypothesis_settings(max_examples=60, deadline=None)
    @given(
        waitlist=entries,
        provider=st.sampled_from([0, 1]),
        day_offset=st.integers(0, 6),
        hour=st.sampled_from([10, 8, 15]),
        overrides=st.sampled_from(SETTINGS_VARIANTS),
    )
    def test_a_rule_added_to_the_table_is_ranked_scanned_and_explained_alike(
        self, waitlist, provider, day_offset, hour, overrides
    ):
        provider = self.providers[provider]
        start = self.local(provider, SLOT_MONDAY + timedelta(days=day_offset), hour)
        for spec in waitlist:
            self.add_entry(spec, provider, start)
        slot = SlotFacts(
            provider.pk,
            provider.specialty_id,
            provider.location_id,
            start,
            start + timedelta(minutes=45),
            time_zone=provider.location.time_zone,
        )
        rules = Rules({**settings.BACKFILL, **overrides})

        fast = rank_candidates(slot, rules, pool=100, rule_table=WITH_NEW_RULES)
        full = rank_by_full_scan(slot, rules, rule_table=WITH_NEW_RULES)

        assert summary(fast) == summary(full)
        assert explained_in_order(slot, rules, WITH_NEW_RULES) == bookable(full)
        assert all(c.entry.reason != "low_match" for c in full)
        assert all(c.breakdown["asked_themselves"] == (15 if c.entry.reason == "patient_request" else 0) for c in full)

    @staticmethod
    def local(provider, day, hour):
        return timezone.make_aware(datetime.combine(day, time(hour)), provider.location.zone)

    def add_entry(self, spec, provider, start):
        spoiler, day = spec["spoiler"], provider.location.local(start).date()
        patient = PatientFactory(
            **risk_of(spec),
            email_opt_out=spoiler in ("opted_out", "texts_without_number") or spec["texts_only"],
            sms_consent=spoiler == "texts_without_number" or (spec["texts_only"] and spoiler != "opted_out"),
            **({"phone": ""} if spoiler == "texts_without_number" else {}),
            insurance_plan=None if spec["plan"] is None else self.plans[spec["plan"]],
            preferred_location=None if spec["location"] is None else self.locations[spec["location"]],
        )
        preferred_provider = provider if spec["own_provider"] else None
        if spoiler == "other_provider":
            preferred_provider = next(other for other in self.providers if other != provider)
        earliest, latest = (day - timedelta(days=2), day) if spec["dated"] else (None, None)
        if spoiler == "starts_later":
            earliest, latest = day + timedelta(days=1), None
        if spoiler == "ended":
            earliest, latest = None, day - timedelta(days=1)
        WaitlistEntry(
            patient=patient,
            specialty=self.other_specialty if spoiler == "other_specialty" else self.specialty,
            preferred_location=patient.preferred_location,
            preferred_provider=preferred_provider,
            available_days=spec["days"],
            time_windows=spec["windows"],
            earliest_date=earliest,
            latest_date=latest,
            status=spoiler if spoiler in ("removed", "booked") else WaitlistEntry.Status.WAITING,
            reason=spec["reason"],
            created_at=timezone.now() - timedelta(minutes=spec["minutes_waiting"]),
        ).save()
        if spec["busy"]:
            Appointment.objects.create(
                patient=patient,
                provider=ProviderFactory(specialty=self.other_specialty, location=self.locations[0]),
                start=start + timedelta(minutes=30),
                end=start + timedelta(minutes=75),
                status=Appointment.Status.CANCELLED if spec["busy"] == "cancelled" else Appointment.Status.SCHEDULED,
            )
        return patient


def risk_of(spec):
    learned = spec["learned"]
    if learned is None:
        return {"no_show_risk": spec["risk"], "no_show_risk_source": Patient.RiskSource.MANUAL}
    return {
        "no_show_risk": learned,
        "no_show_risk_model": learned,
        "no_show_risk_standing": standing_of(learned, QUANTILES),
        "no_show_risk_source": Patient.RiskSource.MODEL,
    }


# Two rules a clinic might add: only the entry and the table change, nothing else.
NEW_RULES = (
    Rule(
        "not_after_low_match",
        Filter(
            "e.reason <> 'low_match'",
            lambda case: case.entry.reason != "low_match",
            lambda case: "joined after a low match",
        ),
    ),
    Rule(
        "asked_themselves",
        tiers=lambda rules: [
            Tier(
                "e.reason = 'patient_request'",
                lambda case: case.entry.reason == "patient_request",
                15,
                lambda case: "asked for an earlier time",
            ),
            Tier(
                "e.reason <> 'patient_request'",
                lambda case: case.entry.reason != "patient_request",
                0,
                lambda case: "added by staff",
            ),
        ],
    ),
)
WITH_NEW_RULES = RULES + NEW_RULES


def explained_in_order(slot, rules, rule_table=RULES):
    """The entries `explain` calls eligible, in the engine's order."""
    busy = busy_patients(slot)
    waiting = WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING).select_related("patient")
    explained = [explain(entry, slot, rules, busy.get(entry.patient_id), rule_table) for entry in waiting]
    return [(e.entry.pk, e.score, e.breakdown) for e in sorted(explained, key=lambda e: e.rank_key) if e.eligible]


def bookable(candidates):
    return [(c.entry.pk, c.score, c.breakdown) for c in candidates if not c.already_booked]


def summary(candidates):
    return [(c.entry.pk, c.score, c.breakdown, c.already_booked) for c in candidates]
