-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as bill_payment_id,
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
    pay_type,
    bank_account_id,
    credit_card_account_id,
    ap_account_id
from {{ source('qbo', 'bill_payments') }}
where deleted_at is null
