-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as employee_id,
    created_at,
    updated_at,
    display_name,
    given_name,
    family_name,
    email,
    phone,
    active,
    employee_number,
    hired_date,
    released_date,
    billable_time,
    bill_rate
from {{ source('qbo', 'employees') }}
where deleted_at is null
