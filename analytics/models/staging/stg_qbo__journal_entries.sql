-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    id as journal_entry_id,
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
    adjustment
from {{ source('qbo', 'journal_entries') }}
where deleted_at is null
