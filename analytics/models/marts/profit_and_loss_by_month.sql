-- The profit and loss, month by month and account by account, from the general ledger:
-- what QuickBooks' ProfitAndLoss report shows for each month, in its sections and signs
-- (income and other income positive when earned, costs and expenses positive when spent).
select
    realm_id,
    cast({{ dbt.date_trunc('month', 'transaction_date') }} as date) as month,
    case account_type
        when 'Income' then 'Income'
        when 'Cost of Goods Sold' then 'Cost of Goods Sold'
        when 'Other Income' then 'Other Income'
        when 'Other Expense' then 'Other Expenses'
        else 'Expenses'
    end as section,
    account_id,
    account_name,
    account_type,
    account_classification,
    sum(case when account_classification = 'Revenue' then -amount else amount end) as amount,
    -- what the month's net income gains from the account: income adds, expenses take away
    -sum(amount) as net_income_effect
from {{ ref('general_ledger') }}
where account_classification in ('Revenue', 'Expense')
group by 1, 2, 3, 4, 5, 6, 7
having sum(amount) <> 0
