-- Each month, the assets equal the liabilities and equity, to the cent.
select realm_id, month,
       sum(case when classification = 'Asset' then balance else -balance end) as difference
from {{ ref('balance_sheet_by_month') }}
group by realm_id, month
having sum(case when classification = 'Asset' then balance else -balance end) <> 0
