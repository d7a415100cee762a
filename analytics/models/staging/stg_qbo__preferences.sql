-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as preferences_id,
    created_at,
    updated_at,
    home_currency,
    multi_currency_enabled,
    fiscal_year_start_month,
    class_tracking_per_txn,
    class_tracking_per_line,
    track_departments,
    department_terminology,
    using_sales_tax,
    custom_txn_numbers
from {{ source('qbo', 'preferences') }}
where deleted_at is null
