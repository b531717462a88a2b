"""Prices: the rules that turn usage into line items (rules), the in-memory index
that prices events at ingest (pricer), the stored, dated price versions
(versions), and the maintained catalog they start from, read from genai-prices
and installed once per database, shared by every book that uses it (catalog).
May import core and storage."""
