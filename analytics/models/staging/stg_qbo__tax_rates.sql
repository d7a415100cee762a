-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as tax_rate_id,
    created_at,
    updated_at,
    name,
    active,
    description,
    rate_value,
    agency_id,
    special_tax_type,
    display_type
from {{ source('qbo', 'tax_rates') }}
where deleted_at is null
