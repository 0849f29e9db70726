"""IMAP and POP3 pulling: mail of registered mailboxes enters through the door captured mail uses.

``connection`` opens sessions (TLS verified, timeouts everywhere) and words failures for users;
``probe`` tries an account's settings; ``imap_sync`` and ``pop3_sync`` are the protocol algorithms;
``importer`` is where a run meets logmail (admission, durable accept, seen set, progress);
``sync_service`` runs one sync of one account under its lease and records the outcome on the
account; ``idle`` keeps IMAP IDLE for accounts that opt in. ``logmail.daemon.jobs`` schedules it all.
"""
