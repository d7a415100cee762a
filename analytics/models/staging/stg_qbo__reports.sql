-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    report,
    period_start,
    period_end,
    fetched_at
from {{ source('qbo', 'reports') }}
