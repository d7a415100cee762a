-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as invoice_id,
    created_at,
    updated_at,
    doc_number,
    customer_id,
    customer_name,
    txn_date,
    due_date,
    total_amt,
    balance,
    total_tax,
    currency,
    exchange_rate,
    home_total_amt,
    sales_term_id,
    bill_email,
    email_status,
    print_status,
    private_note
from {{ source('qbo', 'invoices') }}
where deleted_at is null
