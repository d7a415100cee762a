-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as class_id,
    created_at,
    updated_at,
    name,
    fully_qualified_name,
    parent_id,
    active,
    sub_class
from {{ source('qbo', 'classes') }}
where deleted_at is null
