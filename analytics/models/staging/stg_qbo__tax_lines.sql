-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    parent_type,
    parent_id,
    tax_rate_id,
    tax_percent,
    net_amount_taxable,
    amount
from {{ source('qbo', 'tax_lines') }}
