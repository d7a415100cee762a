-- The accounts QuickBooks posts to when a transaction names none: its system accounts
-- for receivables, payables, undeposited funds and sales tax, one row per company.
select
    realm_id,
    min(case when account_sub_type = 'AccountsReceivable' then account_id end)
        as receivable_account_id,
    min(case when account_sub_type = 'AccountsPayable' then account_id end)
        as payable_account_id,
    min(case when account_sub_type = 'UndepositedFunds' then account_id end)
        as undeposited_account_id,
    min(case when account_sub_type = 'SalesTaxPayable' then account_id end)
        as sales_tax_account_id
from {{ ref('stg_qbo__accounts') }}
group by realm_id
