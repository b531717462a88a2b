"""What every other package speaks: the usage event and its fields, the principal
(who is calling), domain errors, settings, proto conversions, exact money and the
15-minute windows. Imports nothing of the server."""
