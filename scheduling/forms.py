from django import forms

from clinic.validators import single_line
from scheduling.models import ProviderUnavailability


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
