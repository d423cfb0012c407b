from django.db import migrations, models

RANK_INDEXES = {
    "waitlist_rank": ["specialty", "status", "-declined_first", "-{risk}", "created_at", "id"],
    "waitlist_rank_by_location": [
        "specialty",
        "status",
        "preferred_location",
        "-declined_first",
        "-{risk}",
        "created_at",
        "id",
    ],
}


def rank_index(name, risk):
    return models.Index(fields=[field.format(risk=risk) for field in RANK_INDEXES[name]], name=name)


class Migration(migrations.Migration):
    """The entry's copy of the patient's risk becomes the copy of their ranking risk (the same
    values until the no-show model next scores: clinic 0018). Both databases carry an index
    over a renamed column, so only Django's state drops and re-adds the ranking indexes:
    rebuilding them would read every waitlist entry."""

    dependencies = [
        ("clinic", "0018_patient_ranking_risk"),
        ("waitlist", "0002_waitlist_entry_insurance_plan"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RenameField(model_name="waitlistentry", old_name="no_show_risk", new_name="ranking_risk"),
            ],
            state_operations=[
                *(migrations.RemoveIndex(model_name="waitlistentry", name=name) for name in RANK_INDEXES),
                migrations.RenameField(model_name="waitlistentry", old_name="no_show_risk", new_name="ranking_risk"),
                *(
                    migrations.AddIndex(model_name="waitlistentry", index=rank_index(name, "ranking_risk"))
                    for name in RANK_INDEXES
                ),
            ],
        ),
    ]
