-- The balance sheet at the end of each month since a company's first transaction: every
-- asset, liability and equity account's balance then, with this fiscal year's net income
-- as a row of its own and earlier years' closed into Retained Earnings, as QuickBooks'
-- BalanceSheet report shows it. Assets are positive when debited; liabilities and
-- equity when credited, so the assets equal the liabilities and equity each month.
with recursive ledger as (
    select * from {{ ref('general_ledger') }}
),

bounds as (
    select min(cast({{ dbt.date_trunc('month', 'transaction_date') }} as date)) as first_month,
           max(cast({{ dbt.date_trunc('month', 'transaction_date') }} as date)) as last_month
    from ledger
),

spine (date_month) as (
    select first_month from bounds
    union all
    select cast({{ dbt.dateadd('month', 1, 'date_month') }} as date)
    from spine
    where date_month < (select last_month from bounds)
),

fiscal as (
    select c.realm_id,
           coalesce(case lower(substr(c.fiscal_year_start_month, 1, 3))
               when 'jan' then 1 when 'feb' then 2 when 'mar' then 3 when 'apr' then 4
               when 'may' then 5 when 'jun' then 6 when 'jul' then 7 when 'aug' then 8
               when 'sep' then 9 when 'oct' then 10 when 'nov' then 11 when 'dec' then 12
           end, 1) as start_month
    from {{ ref('stg_qbo__company_info') }} as c
),

months as (
    -- each company's months from its first posting on, with the start of the fiscal
    -- year each falls in
    select r.realm_id,
           cast(s.date_month as date) as month,
           cast({{ dbt.last_day('s.date_month', 'month') }} as date) as month_end,
           case when extract(month from s.date_month) >= coalesce(f.start_month, 1)
                then make_date(cast(extract(year from s.date_month) as integer),
                               coalesce(f.start_month, 1), 1)
                else make_date(cast(extract(year from s.date_month) as integer) - 1,
                               coalesce(f.start_month, 1), 1)
           end as fiscal_year_start
    from spine as s
    cross join (select realm_id, min(transaction_date) as first_day from ledger
                group by realm_id) as r
    left join fiscal as f on f.realm_id = r.realm_id
    where cast(s.date_month as date) >= cast({{ dbt.date_trunc('month', 'r.first_day') }} as date)
),

retained as (
    select realm_id, min(account_id) as account_id
    from {{ ref('stg_qbo__accounts') }}
    where account_sub_type = 'RetainedEarnings'
    group by realm_id
),

placed as (
    -- each posting up to a month's end, on the line of the balance sheet it lands on
    select m.realm_id, m.month, m.month_end,
           case when l.account_classification in ('Revenue', 'Expense')
                     and l.transaction_date >= m.fiscal_year_start then null
                when l.account_classification in ('Revenue', 'Expense')
                    then r.account_id
                else l.account_id end as account_id,
           case when l.account_classification in ('Revenue', 'Expense')
                     and l.transaction_date >= m.fiscal_year_start then 'Net Income'
                when l.account_classification in ('Revenue', 'Expense')
                    then 'Retained Earnings'
                else l.account_name end as line,
           l.amount
    from months as m
    join ledger as l
      on l.realm_id = m.realm_id and l.transaction_date <= m.month_end
    left join retained as r on r.realm_id = m.realm_id
)

select
    p.realm_id,
    p.month,
    p.month_end,
    coalesce(a.classification, 'Equity') as classification,
    a.account_type,
    p.account_id,
    coalesce(a.name, p.line) as line,
    sum(case when coalesce(a.classification, 'Equity') = 'Asset' then p.amount
             else -p.amount end) as balance
from placed as p
left join {{ source('qbo', 'accounts') }} as a
  on a.realm_id = p.realm_id and a.id = p.account_id
group by 1, 2, 3, 4, 5, 6, 7
having sum(p.amount) <> 0
