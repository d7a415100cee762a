-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as payment_method_id,
    created_at,
    updated_at,
    name,
    active,
    type
from {{ source('qbo', 'payment_methods') }}
where deleted_at is null
