-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as purchase_order_id,
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
    po_status,
    due_date,
    ap_account_id
from {{ source('qbo', 'purchase_orders') }}
where deleted_at is null
