"""Generated from protos/metering/v1 by protos/generate.py. Do not edit."""
