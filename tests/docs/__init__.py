"""The docs harness: every example of README.md and docs/*.md is run (docs/README.md)."""
