import factory

from clinic.models import Location, Patient, Provider, Specialty


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location
        django_get_or_create = ("name",)

    name = "Downtown"


class SpecialtyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Specialty
        django_get_or_create = ("name",)

    name = "Orthopedic PT"


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"Dr. Provider {n}")
    email = factory.Sequence(lambda n: f"provider{n}@clinic.example")
    specialty = factory.SubFactory(SpecialtyFactory)
    location = factory.SubFactory(LocationFactory)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    first_name = factory.Sequence(lambda n: f"Pat{n}")
    last_name = "Example"
    email = factory.Sequence(lambda n: f"patient{n}@mail.example")
    phone = factory.Sequence(lambda n: f"+1617555{n % 10000:04d}")
    preferred_location = factory.SubFactory(LocationFactory)
    no_show_risk = 0.3


class HighRiskPatientFactory(PatientFactory):
    """The patient the seed's scenario 1 books first: risk 0.85."""

    no_show_risk = 0.85
