-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as tax_code_id,
    created_at,
    updated_at,
    name,
    active,
    description,
    taxable,
    tax_group
from {{ source('qbo', 'tax_codes') }}
where deleted_at is null
