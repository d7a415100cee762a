-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as transfer_id,
    created_at,
    updated_at,
    txn_date,
    amount,
    from_account_id,
    to_account_id,
    currency,
    exchange_rate,
    home_total_amt,
    private_note
from {{ source('qbo', 'transfers') }}
where deleted_at is null
