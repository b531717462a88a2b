"""Native REST: routes generated from the protos' google.api.http options (httprule),
JSON <-> proto per the protobuf JSON mapping (protojson). May import gateway.http and
gateway.upstream."""
