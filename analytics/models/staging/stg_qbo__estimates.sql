-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as estimate_id,
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
    txn_status,
    expiration_date
from {{ source('qbo', 'estimates') }}
where deleted_at is null
