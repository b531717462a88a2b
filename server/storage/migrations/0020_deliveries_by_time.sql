-- The delivery log of every endpoint is listed oldest first by (create_time, delivery_id)
-- (AlertService.ListDeliveries without an endpoint; the dashboard's deliveries). Without this
-- index the listing read and sorted all of the organization's deliveries on every page: 120-315 ms
-- a page at 300,000 deliveries, the first page spilling a 17 MB sort to disk. One endpoint's log
-- has its own index (alert_deliveries_of_endpoint, 0013).
create index alert_deliveries_created on alert_deliveries (org_id, create_time, delivery_id);
