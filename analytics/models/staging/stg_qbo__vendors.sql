-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as vendor_id,
    created_at,
    updated_at,
    display_name,
    given_name,
    family_name,
    email,
    phone,
    active,
    company_name,
    balance,
    currency,
    account_number,
    vendor_1099,
    term_id,
    bill_city,
    bill_region,
    bill_country
from {{ source('qbo', 'vendors') }}
where deleted_at is null
