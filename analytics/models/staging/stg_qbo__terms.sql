-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as term_id,
    created_at,
    updated_at,
    name,
    active,
    type,
    due_days,
    discount_days,
    discount_percent,
    day_of_month_due
from {{ source('qbo', 'terms') }}
where deleted_at is null
