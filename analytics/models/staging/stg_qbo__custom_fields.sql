-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    parent_type,
    parent_id,
    definition_id,
    name,
    type,
    string_value,
    number_value,
    date_value
from {{ source('qbo', 'custom_fields') }}
