"""Retention: organizations' retention settings (raw events N days, payloads M <= N days) and
the worker's sweep that drops whole monthly partitions once they are past every
organization's horizon and every window in them is rolled up; rollups and cubes are kept for
ever (docs/storage.md "Retention"). May import core, storage, tenants and rollups."""
