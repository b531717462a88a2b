"""Native REST: routes generated from the protos' google.api.http options (httprule),
JSON <-> proto per the protobuf JSON mapping (protojson), and the export routes streaming
ExportService as CSV or NDJSON (exports). May import gateway.http and gateway.upstream."""
