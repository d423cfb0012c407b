"""One scale for every no-show risk (docs/rules.md, "No-show risk: one scale").

The backfill's thresholds (BACKFILL MIN_NO_SHOW_RISK, MEDIUM_RISK_THRESHOLD,
HIGH_RISK_THRESHOLD) were made for risks typed by staff or sent by an integrator, and those
keep them. A learned risk is a calibrated probability: in a clinic missing 15% of visits
almost nobody reaches 0.6. So a learned risk is judged by where it stands among the
clinic's scored patients (its standing: the share of them the model rates at or below it),
and each threshold has a standing it stands for (the LEARNED_*_QUANTILE settings): the
median is the floor, the highest fifth earns the high-risk points.

The ranking risk puts both on one scale: a typed risk as it is; a learned risk mapped,
piecewise linearly, from its standing onto the typed scale so that each threshold's
standing lands on that threshold. One column then serves the candidate query's filter,
its tiers and its tie-break (the waitlist_rank indexes), for both kinds at once.
"""

import math
from bisect import bisect_left, bisect_right

from django.conf import settings

# (typed threshold, learned counterpart) pairs, bottom up.
THRESHOLDS = (
    ("MIN_NO_SHOW_RISK", "LEARNED_FLOOR_QUANTILE"),
    ("MEDIUM_RISK_THRESHOLD", "LEARNED_MEDIUM_RISK_QUANTILE"),
    ("HIGH_RISK_THRESHOLD", "LEARNED_HIGH_RISK_QUANTILE"),
)
QUANTILE_STEPS = 100  # a model stores its estimates' percentiles 0..100


def knots(config=None):
    """(standing, ranking risk) points, both strictly increasing, from (0, 0) to (1, 1).

    A threshold of 0 (MIN_NO_SHOW_RISK turning the filter off) is left out: nothing to map.
    """
    config = config or settings.BACKFILL
    points = {(0.0, 0.0), (1.0, 1.0)}
    points |= {(float(config[quantile]), float(config[threshold])) for threshold, quantile in THRESHOLDS}
    points = sorted(point for point in points if point == (0.0, 0.0) or point[1] > 0)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if not (x0 < x1 and y0 < y1):
            raise ValueError(
                "BACKFILL's LEARNED_*_QUANTILE settings must rise with the thresholds they stand for, "
                f"and be equal where the thresholds are equal: {x0} -> {y0} and {x1} -> {y1} are not."
            )
    return points


def ranking_risk_of_standing(standing, config=None):
    """Where a learned risk standing at `standing` (0..1) sits on the typed scale."""
    points = knots(config)
    standing = min(max(standing, 0.0), 1.0)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if standing == x1:
            return y1  # a threshold's standing lands exactly on the threshold
        if standing < x1:
            # Strictly under the next threshold, whatever the rounding.
            return max(y0, min(y0 + (standing - x0) * (y1 - y0) / (x1 - x0), math.nextafter(y1, 0.0)))
    return 1.0


def standing_of_ranking_risk(ranking, config=None):
    """The standing a learned risk needs to reach `ranking` (the inverse of the above)."""
    points = knots(config)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if ranking <= y1:
            return x0 + (max(ranking, y0) - y0) * (x1 - x0) / (y1 - y0)
    return 1.0


def standing_of(risk, quantiles, config=None):
    """Where `risk` stands among the clinic's scored patients (0..1), from the model's
    percentiles (quantiles[k] is the k-th percentile).

    Between two different percentiles it is interpolated, so a higher risk always stands
    higher. A risk that is itself a percentile may be shared by many patients (every
    patient with no history gets the same estimate): its block of equal estimates spans
    the percentiles lo..hi, and its standing is the block's middle, (lo + hi) / 2, its
    percentile rank with ties counted at their middle. Equal estimates thus share one
    tier, the tier their middle falls in, and a tier holds about the share it names
    rounded to whole blocks. One exception keeps the clinic filling: the block holding the
    floor's percentile stands at least at the floor, so the floor admits everyone the
    model rates as high as the median patient and never leaves out more than half the
    clinic (docs/reference.md, "Learned risks and ties").
    """
    if not quantiles or risk < quantiles[0]:
        return 0.0
    last = len(quantiles) - 1
    low, high = bisect_left(quantiles, risk), bisect_right(quantiles, risk) - 1
    if low <= high:  # risk is the percentile lo..hi
        standing = (low + high) / 2 / last
        floor = floor_quantile(config)
        if floor is not None and low <= round(floor * last) <= high:
            standing = max(standing, floor)
        return standing
    step = high  # quantiles[step] < risk < quantiles[step + 1]
    if step >= last:
        return 1.0
    below, above = quantiles[step], quantiles[step + 1]
    within = (risk - below) / (above - below)
    # Strictly inside the interval: above every patient of the block under it, under the next.
    return min(max((step + within) / last, math.nextafter(step / last, 1.0)), math.nextafter((step + 1) / last, 0.0))


def floor_quantile(config=None):
    """The floor's standing, or None when MIN_NO_SHOW_RISK 0 turns the floor off."""
    config = config or settings.BACKFILL
    return float(config["LEARNED_FLOOR_QUANTILE"]) if config["MIN_NO_SHOW_RISK"] > 0 else None


def lowest_estimate_standing_at(quantile, quantiles, config=None):
    """(estimate, inclusive): where a learned risk starts to stand at `quantile` or above;
    inclusive True: from that estimate on, False: only above it. For the words staff read."""
    last = len(quantiles) - 1
    for value in sorted(set(quantiles)):
        if standing_of(value, quantiles, config) >= quantile:
            return value, True
        if value < quantiles[last] and standing_of(math.nextafter(value, 1.0), quantiles, config) >= quantile:
            return value, False
    return quantiles[last], False


def share_words(share):
    """0.2 -> "fifth", 0.5 -> "half", 0.15 -> "15%"."""
    names = {0.5: "half", 1 / 3: "third", 0.25: "quarter", 0.2: "fifth", 0.1: "tenth"}
    return next((name for value, name in names.items() if abs(share - value) < 1e-9), f"{share:.0%}")


def quantile_words(quantile):
    """0.5 -> "median", 0.8 -> "80th percentile"."""
    return "median" if quantile == 0.5 else f"{round(quantile * 100)}th percentile"


def standing_words(standing, config=None):
    """Where a learned risk stands, in the clinic's words: "in this clinic's highest fifth"."""
    config = config or settings.BACKFILL
    bounds = sorted({float(config[quantile]) for _, quantile in THRESHOLDS if 0 < float(config[quantile]) < 1})
    if not bounds:
        return "as this clinic's model rates it"
    passed = [bound for bound in bounds if standing >= bound]
    if not passed:
        share = bounds[0]
        return f"in this clinic's {'lower' if share == 0.5 else 'lowest'} {share_words(share)}"
    share = 1 - passed[-1]
    return f"in this clinic's {'higher' if share == 0.5 else 'highest'} {share_words(share)}"
