-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as customer_id,
    created_at,
    updated_at,
    display_name,
    company_name,
    given_name,
    family_name,
    fully_qualified_name,
    email,
    phone,
    active,
    is_job,
    parent_id,
    taxable,
    balance,
    balance_with_jobs,
    currency,
    bill_city,
    bill_region,
    bill_postal_code,
    bill_country
from {{ source('qbo', 'customers') }}
where deleted_at is null
