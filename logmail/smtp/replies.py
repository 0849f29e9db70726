"""SMTP replies logmail sends, by name (RFC 5321 codes with RFC 3463 enhanced status codes)."""

OK_ACCEPTED = "250 2.0.0 OK: message accepted"
OK_RECIPIENT = "250 2.1.5 OK"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TEMPORARY_FAILURE = "451 4.3.0 Temporary storage failure, please try again later"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
