-- What each customer owes today, invoice by invoice, by days past due in QuickBooks'
-- buckets (Current, 1 - 30, 31 - 60, 61 - 90, 91 and over), in the home currency.
-- Unapplied credit memos count against the customer, as in the AgedReceivables report.
with open_items as (
    select realm_id, 'Invoice' as transaction_type, invoice_id as transaction_id,
           customer_id, customer_name, txn_date, coalesce(due_date, txn_date) as due_date,
           round(balance * coalesce(exchange_rate, 1), 2) as open_amount
    from {{ ref('stg_qbo__invoices') }}
    where balance <> 0
    union all
    select realm_id, 'CreditMemo', credit_memo_id, customer_id, customer_name, txn_date,
           txn_date, -round(remaining_credit * coalesce(exchange_rate, 1), 2)
    from {{ ref('stg_qbo__credit_memos') }}
    where remaining_credit <> 0
)

select
    *,
    {{ days_past_due('due_date') }} as days_past_due,
    {{ aging_bucket('due_date') }} as aging_bucket
from open_items
