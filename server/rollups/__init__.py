"""Rollups: recomputation of dirty windows from raw events (never in place), the day
and hour cubes, and the arq queue that schedules them. May import core and storage."""
