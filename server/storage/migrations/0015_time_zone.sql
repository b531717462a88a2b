-- An organization's time zone (AdminService.GetOrganizationSettings): the IANA zone of
-- its calendar, the default zone of its new budgets and of OpenAI spend limits' months
-- (docs/budgets.md). Checked against the IANA names by the server before it is written.
alter table organizations add column time_zone text not null default 'UTC';
