"""Widgets and small dialogs the console's screens are built from, grouped by area (``mail_*``, ...)."""
