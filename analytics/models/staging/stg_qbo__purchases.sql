-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as purchase_id,
    created_at,
    updated_at,
    doc_number,
    txn_date,
    total_amt,
    currency,
    exchange_rate,
    home_total_amt,
    department_id,
    private_note,
    payment_type,
    account_id,
    payee_type,
    payee_id,
    credit,
    payment_method_id
from {{ source('qbo', 'purchases') }}
where deleted_at is null
