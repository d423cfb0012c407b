"""The messages page: every stored email and text as the patient sees it (docs/reference.md, API)."""

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render

from clinic.access import reads_message_content, staff_page
from clinic.models import OutboundEmail, name_addressees

MESSAGES_PER_PAGE = 20


class OutboxFilter(forms.Form):
    channel = forms.ChoiceField(choices=[("", "Email and text"), *OutboundEmail.Channel.choices], required=False)
    kind = forms.ChoiceField(choices=[("", "Any kind"), *OutboundEmail.Kind.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *OutboundEmail.Status.choices], required=False)

    def emails(self):
        emails = OutboundEmail.objects.select_related("appointment__patient", "appointment__provider").order_by(
            "-created_at", "-id"
        )
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
    name_addressees(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    # Subjects and bodies hold the patient's links: an integrator sees only when, how and what kind.
    context = {
        "form": form,
        "page": page,
        "filter_query": query.urlencode(),
        "shows_content": reads_message_content(request.user),
    }
    return render(request, "staff/outbox.html", context)
