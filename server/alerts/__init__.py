"""Alerts and notifications (DESIGN §12): the rules (every budget's thresholds, unpriced
usage of a cost budget's scope) and their transitions (rules), the events' payloads
(events), detection from committed data into the outbox, exactly once per rule, period
and threshold (detect), webhook endpoints and their URL safety and signing (endpoints,
safety, signing), the delivery log (deliveries) and OpenAI's spend alerts on budgets
(spend_alerts). Delivery itself is the worker's (worker/delivery.py).
May import core, storage, pricing, tenants, ingest, query, costs and budgets."""
