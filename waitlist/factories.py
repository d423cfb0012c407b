import factory

from clinic.factories import PatientFactory, SpecialtyFactory
from waitlist.models import WaitlistEntry


class WaitlistEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WaitlistEntry

    patient = factory.SubFactory(PatientFactory, no_show_risk=0.7)
    specialty = factory.SubFactory(SpecialtyFactory)
    preferred_location = factory.LazyAttribute(lambda e: e.patient.preferred_location)
    reason = WaitlistEntry.Reason.STAFF
