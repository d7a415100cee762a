-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as time_activity_id,
    created_at,
    updated_at,
    txn_date,
    name_of,
    employee_id,
    vendor_id,
    customer_id,
    item_id,
    class_id,
    billable_status,
    taxable,
    hourly_rate,
    hours,
    minutes,
    description
from {{ source('qbo', 'time_activities') }}
where deleted_at is null
