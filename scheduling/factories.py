from datetime import timedelta

import factory
from django.utils import timezone

from clinic.factories import PatientFactory, ProviderFactory
from scheduling.models import Appointment


def next_weekday_at(hour=10, days_ahead=2):
    """A time a couple of days out, on the hour, in the clinic's time zone."""
    day = timezone.localtime() + timedelta(days=days_ahead)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    patient = factory.SubFactory(PatientFactory)
    provider = factory.SubFactory(ProviderFactory)
    start = factory.LazyFunction(next_weekday_at)
    end = factory.LazyAttribute(lambda a: a.start + timedelta(minutes=45))
    status = Appointment.Status.SCHEDULED
    source = Appointment.Source.STAFF
