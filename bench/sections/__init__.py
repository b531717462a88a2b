"""The sections of `python -m bench`, one module each, every result beside a baseline of the same run."""
