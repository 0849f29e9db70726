"""logmail: a self-hosted, multi-tenant email logging and inspection platform."""

__version__ = "0.1.0"
