"""Spanish: the same day-month order and 24-hour clock as clinic/formats/en/formats.py."""

DATE_FORMAT = r"D j M Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = r"D j M Y, H:i"
SHORT_DATE_FORMAT = "d/m/Y"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"
MONTH_DAY_FORMAT = r"j \d\e F"
