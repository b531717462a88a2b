-- name: insert_organization
insert into organizations (id, name) values ($1, $2)
on conflict do nothing
returning org_id, id, name, create_time;

-- name: find_organization
select org_id, id, name, create_time from organizations where id = $1 or name = $1
order by (id = $1) desc limit 1;

-- name: organization_by_number
select org_id, id, name, create_time from organizations where org_id = $1;

-- name: list_organizations
select org_id, id, name, create_time from organizations order by org_id;

-- name: insert_project
insert into projects (org_id, project_id, name) values ($1, $2, $3)
on conflict do nothing
returning org_id, project_id, name, create_time;

-- name: find_project
select org_id, project_id, name, create_time from projects where org_id = $1 and project_id = $2;

-- name: list_projects
select org_id, project_id, name, create_time from projects where org_id = $1 order by project_id;

-- name: insert_user
insert into users (org_id, user_id, username, password_hash, role) values ($1, $2, $3, $4, $5)
on conflict do nothing
returning org_id, user_id, username, role, create_time;

-- name: find_user
-- by id or, failing that, by username (usernames are unique across the service)
select org_id, user_id, username, role, create_time from users where org_id = $1 and (user_id = $2 or username = $2)
order by (user_id = $2) desc limit 1;

-- name: user_for_login
select org_id, user_id, username, role, create_time, password_hash from users where username = $1;

-- name: list_users
select org_id, user_id, username, role, create_time from users where org_id = $1 order by user_id;

-- name: insert_api_key
insert into api_keys (org_id, api_key_id, prefix, secret_hash, project_id, user_id, role, name)
values ($1, $2, $3, $4, $5, $6, $7, $8)
returning org_id, api_key_id, prefix, project_id, user_id, role, name, create_time, revoke_time;

-- name: key_by_prefix
select k.org_id, o.id as organization_id, k.api_key_id, k.secret_hash, k.project_id, k.user_id, k.role,
       k.revoke_time
from api_keys k join organizations o using (org_id)
where k.prefix = $1;

-- name: list_api_keys
select org_id, api_key_id, prefix, project_id, user_id, role, name, create_time, revoke_time
from api_keys where org_id = $1 order by create_time, api_key_id;

-- name: revoke_api_key
update api_keys set revoke_time = coalesce(revoke_time, now())
where org_id = $1 and (api_key_id = $2 or prefix = $3)
returning org_id, api_key_id, prefix, project_id, user_id, role, name, create_time, revoke_time;

-- name: get_secret
select value from server_secrets where name = $1;

-- name: put_secret
insert into server_secrets (name, value) values ($1, $2) on conflict (name) do nothing;

-- name: organization_time_zone
select time_zone from organizations where org_id = $1;

-- name: set_organization_time_zone
update organizations set time_zone = $2 where org_id = $1 returning time_zone;
