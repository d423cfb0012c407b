"""The rule table is the one place a matching rule lives (docs/reference.md, Rules)."""

from backfill.matching import RANK_ORDER
from backfill.rules import RULES
from waitlist.models import WaitlistEntry


def test_the_waitlist_rank_indexes_follow_the_tables_tie_breaks():
    # waitlist sits below backfill, so its indexes cannot read the table: this holds them in step.
    indexes = {index.name: tuple(index.fields) for index in WaitlistEntry._meta.indexes}

    assert indexes["waitlist_rank"][2:] == RANK_ORDER
    assert indexes["waitlist_rank_by_location"][3:] == RANK_ORDER


def test_each_rule_is_named_once():
    names = [rule.name for rule in RULES]

    assert len(names) == len(set(names))
