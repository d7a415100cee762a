-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    parent_type,
    parent_id,
    line_index,
    linked_type,
    linked_id
from {{ source('qbo', 'linked_transactions') }}
