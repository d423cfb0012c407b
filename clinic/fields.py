"""Weekdays and time-of-day windows, stored as bit masks so the database can filter on them.

In Python (models, forms, the API) they are plain lists: ``["mon", "wed"]`` and
``["09:00-12:00", "14:00-17:30"]``. In the database a weekday set is a 7-bit integer and a
set of windows a 48-bit integer (one bit per half hour), so "is this slot inside the
patient's availability" is one bitwise AND in the candidate query. Zero means "no
restriction": any day, any time.
"""

import re
from datetime import time

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WINDOW_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
HALF_HOURS = 48


def weekday_bit(day_index):
    """Bit of a weekday, Monday=0 as in ``date.weekday()``."""
    return 1 << day_index


def weekdays_to_mask(days):
    mask = 0
    for day in days or []:
        if day not in WEEKDAYS:
            raise ValidationError(
                gettext('"{day}" is not a weekday; use one of {days}.').format(day=day, days=", ".join(WEEKDAYS))
            )
        mask |= weekday_bit(WEEKDAYS.index(day))
    return mask


def mask_to_weekdays(mask):
    return [day for index, day in enumerate(WEEKDAYS) if mask & weekday_bit(index)]


def _half_hour(hours, minutes, window):
    if minutes not in (0, 30) or not 0 <= hours <= 24 or (hours == 24 and minutes):
        raise ValidationError(
            gettext('"{window}": times must be on the hour or half hour, 00:00 to 24:00.').format(window=window)
        )
    return hours * 2 + minutes // 30


def windows_to_mask(windows):
    mask = 0
    for window in windows or []:
        match = WINDOW_RE.match(str(window).strip())
        if not match:
            raise ValidationError(gettext('"{window}" is not a time window like "09:00-12:30".').format(window=window))
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        start, end = _half_hour(h1, m1, window), _half_hour(h2, m2, window)
        if end <= start:
            raise ValidationError(gettext('"{window}": the window must end after it starts.').format(window=window))
        mask |= ((1 << end) - 1) ^ ((1 << start) - 1)
    return mask


def _clock(half_hour):
    return f"{half_hour // 2:02d}:{half_hour % 2 * 30:02d}"


def mask_to_windows(mask):
    windows, start = [], None
    for half_hour in range(HALF_HOURS + 1):
        inside = half_hour < HALF_HOURS and mask & (1 << half_hour)
        if inside and start is None:
            start = half_hour
        elif not inside and start is not None:
            windows.append(f"{_clock(start)}-{_clock(half_hour)}")
            start = None
    return windows


def span_mask(start: time, end: time):
    """The half hours a local [start, end) time span touches."""
    first = start.hour * 2 + start.minute // 30
    last = end.hour * 2 + (end.minute + 29) // 30 if end > start else HALF_HOURS
    return ((1 << max(last, first + 1)) - 1) ^ ((1 << first) - 1)


class _MaskedListField(models.BigIntegerField):
    to_mask = staticmethod(lambda value: 0)
    from_mask = staticmethod(lambda mask: [])
    choices_for_form = None

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return self.from_mask(value or 0)

    def to_python(self, value):
        if isinstance(value, int):
            return self.from_mask(value)
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return self.from_mask(self.to_mask(value))

    def get_prep_value(self, value):
        if isinstance(value, int):
            return value
        return self.to_mask(value)

    def value_to_string(self, obj):
        return ",".join(self.value_from_object(obj))

    def validate(self, value, model_instance):
        self.to_mask(value)


class WeekdaysField(_MaskedListField):
    description = "A set of weekdays, stored as a 7-bit mask"
    to_mask = staticmethod(weekdays_to_mask)
    from_mask = staticmethod(mask_to_weekdays)

    def formfield(self, **kwargs):
        return forms.TypedMultipleChoiceField(
            choices=[(day, day.title()) for day in WEEKDAYS],
            widget=forms.CheckboxSelectMultiple,
            required=False,
            label=self.verbose_name.capitalize(),
            help_text=self.help_text,
        )


class TimeWindowsField(_MaskedListField):
    description = "Time-of-day windows, stored as a half-hour bit mask"
    to_mask = staticmethod(windows_to_mask)
    from_mask = staticmethod(mask_to_windows)

    def formfield(self, **kwargs):
        return TimeWindowsFormField(required=False, label=self.verbose_name.capitalize(), help_text=self.help_text)


class TimeWindowsFormField(forms.CharField):
    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        windows = [item.strip() for item in (value or "").split(",") if item.strip()]
        windows_to_mask(windows)
        return windows
