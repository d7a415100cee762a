-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as budget_id,
    created_at,
    updated_at,
    name,
    active,
    start_date,
    end_date,
    budget_type,
    budget_entry_type
from {{ source('qbo', 'budgets') }}
where deleted_at is null
