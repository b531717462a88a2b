-- An event's audit trail is read by event (RecordService.GetEventHistory, oldest first). Without
-- this index the read scanned every adjustment of the organization, and a repricing writes one
-- per event it moves.
create index event_adjustments_event on event_adjustments (org_id, event_id, adjustment_id);
