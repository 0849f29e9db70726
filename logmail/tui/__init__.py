"""The Textual operator console; it speaks to logmail only through the public REST API."""
