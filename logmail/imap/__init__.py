"""IMAP and POP3 pull clients and the sync state machine (mailbox accounts arrive with their issue)."""
