-- What the company owes each vendor today, bill by bill, by days past due in the same
-- buckets as ar_aging, in the home currency. Open vendor credits count against the
-- vendor, as they do in its balance.
with open_items as (
    select realm_id, 'Bill' as transaction_type, bill_id as transaction_id, vendor_id,
           vendor_name, txn_date, coalesce(due_date, txn_date) as due_date,
           round(balance * coalesce(exchange_rate, 1), 2) as open_amount
    from {{ ref('stg_qbo__bills') }}
    where balance <> 0
    union all
    select realm_id, 'VendorCredit', vendor_credit_id, vendor_id, vendor_name, txn_date,
           txn_date, -round(balance * coalesce(exchange_rate, 1), 2)
    from {{ ref('stg_qbo__vendor_credits') }}
    where balance <> 0
)

select
    *,
    {{ days_past_due('due_date') }} as days_past_due,
    {{ aging_bucket('due_date') }} as aging_bucket
from open_items
