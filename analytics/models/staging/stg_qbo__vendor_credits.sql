-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as vendor_credit_id,
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
    vendor_id,
    vendor_name,
    balance,
    ap_account_id
from {{ source('qbo', 'vendor_credits') }}
where deleted_at is null
