-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as department_id,
    created_at,
    updated_at,
    name,
    fully_qualified_name,
    parent_id,
    active,
    sub_department
from {{ source('qbo', 'departments') }}
where deleted_at is null
