-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as item_id,
    created_at,
    updated_at,
    name,
    fully_qualified_name,
    parent_id,
    active,
    type,
    sku,
    description,
    taxable,
    unit_price,
    purchase_cost,
    track_qty_on_hand,
    qty_on_hand,
    income_account_id,
    expense_account_id,
    asset_account_id
from {{ source('qbo', 'items') }}
where deleted_at is null
