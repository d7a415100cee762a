-- Every transaction as debits (positive amounts) and credits (negative) against its
-- accounts, in the home currency, by QuickBooks' accrual rules:
--   * a sales form credits each sold item's income account, debits each discount's
--     account and credits sales tax; its receivable (invoice, credit memo) or deposit
--     account (sales and refund receipts) takes the balance;
--   * a purchase form debits each line's account (an inventory item's asset account,
--     another item's expense account); payables (bill, vendor credit) or the account paid
--     from (purchase) take the balance; a credit card credit reverses it;
--   * payments, bill payments, deposits, transfers and journal entries move money
--     between the accounts they name.
-- Foreign amounts are converted line by line, to the cent, and the balancing account
-- takes what balances them, so every transaction's debits equal its credits.
{% set sales_forms = [
    ('Invoice', 'invoices', 'invoice_id', 'null', 'receivable_account_id', 1),
    ('SalesReceipt', 'sales_receipts', 'sales_receipt_id', 'deposit_to_account_id',
        'undeposited_account_id', 1),
    ('CreditMemo', 'credit_memos', 'credit_memo_id', 'null', 'receivable_account_id', -1),
    ('RefundReceipt', 'refund_receipts', 'refund_receipt_id', 'deposit_to_account_id',
        'undeposited_account_id', -1),
] %}
{% set expense_forms = [
    ('Bill', 'bills', 'bill_id', 'ap_account_id', 'payable_account_id', '1', 'vendor_id'),
    ('VendorCredit', 'vendor_credits', 'vendor_credit_id', 'ap_account_id',
        'payable_account_id', '-1', 'vendor_id'),
    ('Purchase', 'purchases', 'purchase_id', 'account_id', 'undeposited_account_id',
        'case when f.credit then -1 else 1 end',
        "case when f.payee_type = 'Vendor' then f.payee_id end"),
] %}

with defaults as (
    select * from {{ ref('int_default_accounts') }}
),

items as (
    -- every item, inactive ones too: old lines still name them
    select realm_id, id as item_id, income_account_id, expense_account_id, asset_account_id,
           track_qty_on_hand
    from {{ source('qbo', 'items') }}
),

forms as (
    {% for kind, table, key, own, fallback, sign in sales_forms %}
    select '{{ kind }}' as transaction_type, f.realm_id, f.{{ key }} as transaction_id,
           f.txn_date, f.customer_id, cast(null as varchar) as vendor_id,
           coalesce(f.exchange_rate, 1) as rate, {{ sign }} as sign,
           coalesce({{ 'f.' ~ own if own != 'null' else 'null' }}, d.{{ fallback }})
               as balancing_account_id,
           f.total_tax
    from {{ ref('stg_qbo__' ~ table) }} as f
    left join defaults as d on d.realm_id = f.realm_id
    union all
    {% endfor %}
    {% for kind, table, key, own, fallback, sign, vendor in expense_forms %}
    select '{{ kind }}', f.realm_id, f.{{ key }}, f.txn_date, cast(null as varchar),
           {{ vendor }}, coalesce(f.exchange_rate, 1), {{ sign }},
           coalesce(f.{{ own }}, d.{{ fallback }}), cast(null as decimal(24, 8))
    from {{ ref('stg_qbo__' ~ table) }} as f
    left join defaults as d on d.realm_id = f.realm_id
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

sales_lines as (
    {% for kind, table, key, own, fallback, sign in sales_forms %}
    select '{{ kind }}' as transaction_type, realm_id, {{ key }} as transaction_id,
           line_index, detail_type, item_id, discount_account_id, amount
    from {{ ref('stg_qbo__' ~ table[:-1] ~ '_lines') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

expense_lines as (
    {% for kind, table, key, own, fallback, sign, vendor in expense_forms %}
    select '{{ kind }}' as transaction_type, realm_id, {{ key }} as transaction_id,
           line_index, detail_type, account_id, item_id, amount
    from {{ ref('stg_qbo__' ~ table[:-1] ~ '_lines') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

form_lines as (
    -- sales: income credited, discounts debited
    select f.transaction_type, f.realm_id, f.transaction_id, f.txn_date, f.customer_id,
           f.vendor_id, l.line_index,
           case when l.detail_type = 'DiscountLineDetail' then l.discount_account_id
                else i.income_account_id end as account_id,
           f.sign * case when l.detail_type = 'DiscountLineDetail' then 1 else -1 end
               * round(l.amount * f.rate, 2) as amount
    from forms as f
    join sales_lines as l
      on l.transaction_type = f.transaction_type and l.realm_id = f.realm_id
     and l.transaction_id = f.transaction_id
    left join items as i on i.realm_id = l.realm_id and i.item_id = l.item_id
    where l.detail_type in ('SalesItemLineDetail', 'DiscountLineDetail')
    union all
    -- sales tax, credited to the tax payable account (sales forms carry a total tax)
    select f.transaction_type, f.realm_id, f.transaction_id, f.txn_date, f.customer_id,
           f.vendor_id, null, d.sales_tax_account_id,
           -f.sign * round(f.total_tax * f.rate, 2)
    from forms as f
    left join defaults as d on d.realm_id = f.realm_id
    where f.total_tax is not null
    union all
    -- purchases: each line debited to its account, or its item's
    select f.transaction_type, f.realm_id, f.transaction_id, f.txn_date, f.customer_id,
           f.vendor_id, l.line_index,
           case when l.detail_type = 'AccountBasedExpenseLineDetail' then l.account_id
                when i.track_qty_on_hand and i.asset_account_id is not null
                    then i.asset_account_id
                else i.expense_account_id end,
           f.sign * round(l.amount * f.rate, 2)
    from forms as f
    join expense_lines as l
      on l.transaction_type = f.transaction_type and l.realm_id = f.realm_id
     and l.transaction_id = f.transaction_id
    left join items as i on i.realm_id = l.realm_id and i.item_id = l.item_id
    where l.detail_type in ('AccountBasedExpenseLineDetail', 'ItemBasedExpenseLineDetail')
),

form_balances as (
    -- the form's own account takes what balances its lines
    select f.transaction_type, f.realm_id, f.transaction_id, f.txn_date, f.customer_id,
           f.vendor_id, cast(null as integer) as line_index,
           f.balancing_account_id as account_id, -coalesce(sum(l.amount), 0) as amount
    from forms as f
    left join form_lines as l
      on l.transaction_type = f.transaction_type and l.realm_id = f.realm_id
     and l.transaction_id = f.transaction_id
    group by f.transaction_type, f.realm_id, f.transaction_id, f.txn_date, f.customer_id,
             f.vendor_id, f.balancing_account_id
),

payments as (
    select p.realm_id, p.payment_id, p.txn_date, p.customer_id,
           round(p.total_amt * coalesce(p.exchange_rate, 1), 2) as amount,
           coalesce(p.deposit_to_account_id, d.undeposited_account_id) as deposit_account_id,
           coalesce(p.ar_account_id, d.receivable_account_id) as receivable_account_id
    from {{ ref('stg_qbo__payments') }} as p
    left join defaults as d on d.realm_id = p.realm_id
),

bill_payments as (
    select p.realm_id, p.bill_payment_id, p.txn_date, p.vendor_id,
           round(p.total_amt * coalesce(p.exchange_rate, 1), 2) as amount,
           coalesce(p.ap_account_id, d.payable_account_id) as payable_account_id,
           coalesce(p.bank_account_id, p.credit_card_account_id, d.undeposited_account_id)
               as paid_from_account_id
    from {{ ref('stg_qbo__bill_payments') }} as p
    left join defaults as d on d.realm_id = p.realm_id
),

deposit_lines as (
    select dep.realm_id, dep.deposit_id, dep.txn_date, l.line_index,
           coalesce(l.account_id, d.undeposited_account_id) as account_id,
           -round(l.amount * coalesce(dep.exchange_rate, 1), 2) as amount
    from {{ ref('stg_qbo__deposits') }} as dep
    join {{ ref('stg_qbo__deposit_lines') }} as l
      on l.realm_id = dep.realm_id and l.deposit_id = dep.deposit_id
    left join defaults as d on d.realm_id = dep.realm_id
),

transfers as (
    select t.realm_id, t.transfer_id, t.txn_date,
           round(t.amount * coalesce(t.exchange_rate, 1), 2) as amount,
           coalesce(t.to_account_id, d.undeposited_account_id) as to_account_id,
           coalesce(t.from_account_id, d.undeposited_account_id) as from_account_id
    from {{ ref('stg_qbo__transfers') }} as t
    left join defaults as d on d.realm_id = t.realm_id
),

postings as (
    select * from form_lines
    union all
    select * from form_balances
    union all
    select 'Payment', realm_id, payment_id, txn_date, customer_id, null, null,
           deposit_account_id, amount
    from payments
    union all
    select 'Payment', realm_id, payment_id, txn_date, customer_id, null, null,
           receivable_account_id, -amount
    from payments
    union all
    select 'BillPayment', realm_id, bill_payment_id, txn_date, null, vendor_id, null,
           payable_account_id, amount
    from bill_payments
    union all
    select 'BillPayment', realm_id, bill_payment_id, txn_date, null, vendor_id, null,
           paid_from_account_id, -amount
    from bill_payments
    union all
    select 'Deposit', realm_id, deposit_id, txn_date, null, null, line_index, account_id,
           amount
    from deposit_lines
    union all
    select 'Deposit', dep.realm_id, dep.deposit_id, dep.txn_date, null, null, null,
           coalesce(dep.deposit_to_account_id, d.undeposited_account_id),
           -coalesce(sum(l.amount), 0)
    from {{ ref('stg_qbo__deposits') }} as dep
    left join deposit_lines as l
      on l.realm_id = dep.realm_id and l.deposit_id = dep.deposit_id
    left join defaults as d on d.realm_id = dep.realm_id
    group by dep.realm_id, dep.deposit_id, dep.txn_date, dep.deposit_to_account_id,
             d.undeposited_account_id
    union all
    select 'Transfer', realm_id, transfer_id, txn_date, null, null, null, to_account_id,
           amount
    from transfers
    union all
    select 'Transfer', realm_id, transfer_id, txn_date, null, null, null, from_account_id,
           -amount
    from transfers
    union all
    select 'JournalEntry', j.realm_id, j.journal_entry_id, j.txn_date,
           case when l.entity_type = 'Customer' then l.entity_id end,
           case when l.entity_type = 'Vendor' then l.entity_id end,
           l.line_index, l.account_id,
           case when l.posting_type = 'Debit' then 1 else -1 end
               * round(l.amount * coalesce(j.exchange_rate, 1), 2)
    from {{ ref('stg_qbo__journal_entries') }} as j
    join {{ ref('stg_qbo__journal_entry_lines') }} as l
      on l.realm_id = j.realm_id and l.journal_entry_id = j.journal_entry_id
)

select
    p.realm_id,
    p.transaction_type,
    p.transaction_id,
    p.txn_date as transaction_date,
    p.line_index,
    p.account_id,
    a.name as account_name,
    a.classification as account_classification,
    a.account_type,
    p.customer_id,
    p.vendor_id,
    p.amount,
    case when p.amount > 0 then p.amount else 0 end as debit_amount,
    case when p.amount < 0 then -p.amount else 0 end as credit_amount
from postings as p
left join {{ source('qbo', 'accounts') }} as a
  on a.realm_id = p.realm_id and a.id = p.account_id
where p.amount <> 0
