"""A new patient whose risk is left to the model starts at the model's estimate for a first
visit (docs/reference.md, No-show model), instead of 0.0 until the next nightly training."""

from django.db.models.signals import pre_save
from django.dispatch import receiver

from clinic import risk_scale
from clinic.models import Patient
from scheduling.models import NoShowModel


@receiver(pre_save, sender=Patient)
def start_new_patient_at_the_model_estimate(sender, instance, raw=False, **kwargs):
    if raw or not instance._state.adding or instance.no_show_risk_source != Patient.RiskSource.MODEL:
        return
    model = NoShowModel.objects.in_use()
    first_visit = model and model.typical_visit.get("first_visit")
    if not first_visit:
        return
    instance.no_show_risk = instance.no_show_risk_model = first_visit["estimate"]
    instance.no_show_risk_reasons = first_visit["reasons"]
    if model.risk_quantiles:
        instance.no_show_risk_standing = risk_scale.standing_of(first_visit["estimate"], model.risk_quantiles)
    instance.ranking_risk = instance.risk_on_ranking_scale()  # Patient.save set it before this ran
