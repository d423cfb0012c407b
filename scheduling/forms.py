from django import forms

from clinic.validators import single_line
from scheduling.models import ProviderUnavailability
from scheduling.reassignment import WorkflowError, check_request


class ProviderUnavailableForm(forms.Form):
    """The days a provider is away, asked by the provider admin's action."""

    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="First day away.")
    end_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Last day away (included).")
    reason = forms.CharField(
        max_length=ProviderUnavailability._meta.get_field("reason").max_length,
        validators=[single_line],
        required=False,
        help_text='e.g. "sick"',
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start_date"), cleaned.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", "The end date must not be before the start date.")
        return cleaned


class CancelAppointmentsForm(forms.Form):
    """The reason the admin's Cancel action asks for: it is kept on the appointment and
    told to the patient."""

    reason = forms.CharField(
        max_length=200,
        validators=[single_line],
        help_text='Told to the patient in their email, e.g. "the clinic is closed that morning".',
    )


class AbsenceForm(forms.ModelForm):
    """The absence admin's add form: it runs the reassignment workflow, so it refuses what the
    workflow refuses (an inactive provider, days already past) before anything is saved."""

    class Meta:
        model = ProviderUnavailability
        fields = ["provider", "start_date", "end_date", "reason"]

    def clean(self):
        cleaned = super().clean()
        provider, start, end = cleaned.get("provider"), cleaned.get("start_date"), cleaned.get("end_date")
        if provider and start and end:
            try:
                check_request(provider, start, end, cleaned.get("reason") or "")
            except WorkflowError as error:
                raise forms.ValidationError(str(error)) from error
        return cleaned
