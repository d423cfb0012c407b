"""`GET /api/patients/{id}/export/`: everything about one patient, for Clinic managers."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.trail import record_view
from clinic.models import Patient
from privacy.export import PatientRecord


class ExportsPatients(permissions.BasePermission):
    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("privacy.export_patient_data"))


class PatientExportView(APIView):
    permission_classes = [ExportsPatients]

    @extend_schema(
        responses=inline_serializer(
            "PatientExport",
            {
                "patient": serializers.IntegerField(),
                "summary": serializers.CharField(help_text="Everything, as text to read."),
                "bundle": serializers.JSONField(help_text="A FHIR R4 Bundle of type collection."),
            },
        )
    )
    def get(self, request, pk):
        """The patient's FHIR R4 Bundle (`bundle`) and the same as text (`summary`)."""
        record = PatientRecord(get_object_or_404(Patient, pk=pk))
        record_view("patient export", pk, record.patient.pk)
        return Response({"patient": record.patient.pk, "summary": record.summary(), "bundle": record.bundle()})
