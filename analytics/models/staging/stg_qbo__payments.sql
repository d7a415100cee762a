-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as payment_id,
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
    deposit_to_account_id,
    payment_method_id,
    unapplied_amt,
    ar_account_id,
    payment_ref_num
from {{ source('qbo', 'payments') }}
where deleted_at is null
