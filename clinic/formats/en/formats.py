"""How Django writes dates and times where no filter of clinic/times.py is used (the admin's
lists and forms' read-only fields): as staff read them everywhere else, "Wed 2 Dec 2026, 13:05"
(clinic.times.staff_datetime). Input formats stay Django's own."""

DATE_FORMAT = "D j M Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "D j M Y, H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
MONTH_DAY_FORMAT = "j F"
