"""Prices: the rules that turn usage into line items (rules), the in-memory index
that prices events at ingest (pricer), and the stored, dated price versions
(versions); the starter price table in data/. May import core and storage."""
