-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as credit_memo_id,
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
    customer_id,
    customer_name,
    total_tax,
    remaining_credit
from {{ source('qbo', 'credit_memos') }}
where deleted_at is null
