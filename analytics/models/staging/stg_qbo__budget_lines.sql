-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    l.realm_id,
    l.budget_id,
    l.line_index,
    l.budget_date,
    l.amount,
    l.account_id,
    l.account_name,
    l.customer_id,
    l.class_id,
    l.department_id
from {{ source('qbo', 'budget_lines') }} as l
join {{ source('qbo', 'budgets') }} as p
  on p.realm_id = l.realm_id and p.id = l.budget_id
where p.deleted_at is null
