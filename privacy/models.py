from clinic.models import Patient


class PatientData(Patient):
    """Patients as their own data: the admin's export and erasure, for Clinic managers."""

    class Meta:
        proxy = True
        verbose_name = "patient's own data"
        verbose_name_plural = "patients' own data"
        default_permissions = ("view",)
        permissions = [
            ("export_patient_data", "Can export everything about a patient"),
            ("erase_patient_data", "Can erase a patient's identifying data"),
        ]
