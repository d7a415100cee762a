-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as tax_agency_id,
    created_at,
    updated_at,
    display_name,
    tax_tracked_on_sales,
    tax_tracked_on_purchases,
    registration_number
from {{ source('qbo', 'tax_agencies') }}
where deleted_at is null
