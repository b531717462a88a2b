"""The seed APIs' REST dialects, each converting REST <-> proto and calling the
server: QueryLake (000), token usage (001), usage log (002), OpenAI (004, in openai/),
with the helpers they share (common, fastapi_style). May import gateway.http and
gateway.upstream."""
