-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as company_info_id,
    created_at,
    updated_at,
    company_name,
    legal_name,
    country,
    email,
    phone,
    web_address,
    city,
    region,
    postal_code,
    fiscal_year_start_month,
    company_start_date
from {{ source('qbo', 'company_info') }}
where deleted_at is null
