"""The messages page: every stored email and text as the patient sees it (SPEC 8)."""

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render

from clinic.access import staff_page
from clinic.models import OutboundEmail

MESSAGES_PER_PAGE = 20


class OutboxFilter(forms.Form):
    channel = forms.ChoiceField(choices=[("", "Email and text"), *OutboundEmail.Channel.choices], required=False)
    kind = forms.ChoiceField(choices=[("", "Any kind"), *OutboundEmail.Kind.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *OutboundEmail.Status.choices], required=False)

    def emails(self):
        emails = OutboundEmail.objects.order_by("-created_at", "-id")
        for name in ("channel", "kind", "status"):
            if self.cleaned_data[name]:
                emails = emails.filter(**{name: self.cleaned_data[name]})
        return emails


@staff_page("clinic.view_outboundemail")
def outbox(request):
    form = OutboxFilter(request.GET)
    if not form.is_valid():
        return render(request, "staff/outbox.html", {"form": form}, status=400)
    page = Paginator(form.emails(), MESSAGES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "staff/outbox.html", {"form": form, "page": page, "filter_query": query.urlencode()})
