-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as account_id,
    created_at,
    updated_at,
    name,
    fully_qualified_name,
    parent_id,
    active,
    sub_account,
    account_number,
    classification,
    account_type,
    account_sub_type,
    description,
    current_balance,
    current_balance_with_sub_accounts,
    currency
from {{ source('qbo', 'accounts') }}
where deleted_at is null
